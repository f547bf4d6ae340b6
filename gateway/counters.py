"""Counters for everything the gateway rejects, drops or retries, and log-once bookkeeping."""

from __future__ import annotations

import logging
from collections import Counter


class Counters:
    """Named counters with labels, e.g. `inc("rejected", reason="bad_json", topic=...)`."""

    def __init__(self) -> None:
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._logged: set[tuple[str, ...]] = set()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    def get(self, name: str, **labels: str) -> int:
        """The sum over every label set that includes `labels`."""
        want = set(labels.items())
        return sum(
            value
            for (n, lbls), value in self._values.items()
            if n == name and want.issubset(lbls)
        )

    def snapshot(self) -> dict[str, int]:
        return {
            name + ("{" + ",".join(f"{k}={v}" for k, v in lbls) + "}" if lbls else ""): value
            for (name, lbls), value in sorted(self._values.items())
        }

    def log_once(
        self, logger: logging.Logger, key: tuple[str, ...], msg: str, *args: object
    ) -> None:
        """Log a warning the first time `key` is seen; later occurrences are only counted."""
        if key in self._logged:
            return
        self._logged.add(key)
        logger.warning(msg, *args)
