"""A device's message rate, held to what it declared: a token bucket per device."""

from __future__ import annotations


class Throttle:
    """`rate_hz` messages a second on average, `burst_s` seconds of them at once."""

    __slots__ = ("_at", "_capacity", "_rate", "_tokens", "logged_at")

    def __init__(self, rate_hz: float, burst_s: float, now: float) -> None:
        self._rate = rate_hz
        self._capacity = max(rate_hz * burst_s, 1.0)
        self._tokens = self._capacity
        self._at = now
        self.logged_at = -1e18  # when its throttling was last logged (monotonic)

    def allow(self, now: float) -> bool:
        """Whether one more message fits now; takes it if so."""
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class HeldAnswers:
    """Refusals of throttled pushes answered late, `hold_s` after the refusal, at most `cap`
    at once. A sender that waits for each answer before it sends again on a connection (as
    HTTP/1.1 does) then sends at most one push a hold on each: a flood that ignores the
    refusals is slowed down by its own connections instead of being read ever faster."""

    __slots__ = ("cap", "held", "hold_s")

    def __init__(self, hold_s: float, cap: int) -> None:
        self.hold_s = hold_s
        self.cap = cap
        self.held = 0  # answers held now

    def take(self) -> bool:
        """Whether one more answer may be held; counts it if so (`give` when it is sent)."""
        if self.hold_s <= 0 or self.held >= self.cap:
            return False
        self.held += 1
        return True

    def give(self) -> None:
        self.held -= 1
