"""Capped exponential backoff with full jitter, reset after a success."""

from __future__ import annotations

import random


class Backoff:
    """Delays for retrying: uniform in [0, min(cap, base * 2**attempt)]."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self._base = base
        self._cap = cap
        self._attempt = 0
        self._rng = rng or random.Random()

    @property
    def attempt(self) -> int:
        return self._attempt

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._base * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        # a small floor keeps a dead peer from being hammered when the draw is near zero
        return max(self._base * 0.1, self._rng.uniform(0.0, ceiling))

    def reset(self) -> None:
        self._attempt = 0
