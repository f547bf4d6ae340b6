"""When the gateway is behind on what it takes in, and when it has caught up.

The intake's lanes (each broker session, the readings waiting for the rules) report the
age of their oldest message not yet handled. A lane older than `after_s` for `hold_s`
makes the gateway overloaded (a burst it clears within the hold is not news to the duty
office); every lane under `clear_s` again makes it caught up. "Stays" means watched all
along: samples further apart than MAX_GAP_S (the process was suspended, the clock
jumped) start the hold again. The decision is kept apart from the sampling so that it
runs on any clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.config import LimitsConfig

DEVICE = "gateway"  # the device id of the gateway's own events and its alert
MAX_GAP_S = 2.0  # samples further apart than this: not watched in between


@dataclass(frozen=True, slots=True)
class Turn:
    """The gateway became overloaded (`overloaded`), or caught up (not `overloaded`)."""

    overloaded: bool
    lane: str  # the lane furthest behind when it turned
    behind_s: float
    messages: int


class OverloadWatch:
    """Turns the lanes' backlogs, sampled with their (monotonic) time, into turns."""

    def __init__(self, after_s: float, hold_s: float, clear_s: float,
                 overloaded: bool = False) -> None:
        self._after_s = after_s
        self._hold_s = hold_s
        self._clear_s = clear_s
        self.overloaded = overloaded  # as the journal last said (an alert left firing)
        self._above_since: float | None = None
        self._last_at: float | None = None

    @classmethod
    def from_limits(cls, limits: LimitsConfig, overloaded: bool = False) -> OverloadWatch:
        return cls(limits.overloaded_after_s, limits.overloaded_hold_s,
                   limits.overloaded_clear_s, overloaded)

    def observe(self, now: float, lanes: Mapping[str, Mapping[str, float]]) -> Turn | None:
        """The turn the backlogs of `lanes` (`oldest_s`, `messages`) at `now` make, if any."""
        if not lanes:
            return None
        if self._last_at is not None and now - self._last_at > MAX_GAP_S:
            self._above_since = None  # not watched in between: the hold starts again
        self._last_at = now
        lane = max(lanes, key=lambda name: lanes[name]["oldest_s"])
        behind = lanes[lane]["oldest_s"]
        turn = Turn(not self.overloaded, lane, round(behind, 3), int(lanes[lane]["messages"]))
        if self.overloaded:
            if behind < self._clear_s:
                self.overloaded = False
                self._above_since = None
                return turn
            return None
        if behind <= self._after_s:
            self._above_since = None
            return None
        if self._above_since is None:
            self._above_since = now
        if now - self._above_since >= self._hold_s:
            self.overloaded = True
            return turn
        return None
