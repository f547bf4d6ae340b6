"""An alarm's right of way over the work that only moves readings.

Under load the event loop's turns are full of readings: the link handles a burst of
messages, the rule engine a batch of readings, the sinks their telemetry batches. An
alarm's way from the intake to the broker crosses several turns (the rules' task, the
journal's thread and back, the MQTT sink's task), and in each it waited for whatever
work that turn held. While an alarm is on its way that work steps aside: the links
handle a few packets a turn instead of a burst, the rule engine leaves readings for
later, the sinks hold their telemetry back.

The intake claims the way when it takes an alarm and says which journal record the alarm
ends at once it is journalled; the claim ends when the MQTT sink has published that
record, when the alarm could not be journalled, or after MAX_CLAIM_S whatever became of
it (with the broker down, readings do not wait for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.core.clock import Timer

CallLater = Callable[[float, Callable[[], None]], Timer]

# the longest a claim holds readings back (physical time: the event loop's turns are what
# it is about); an alarm's way takes a few milliseconds
MAX_CLAIM_S = 0.05


class Claim:
    """One alarm's claim: open until its records are published, or it ends otherwise."""

    __slots__ = ("through", "timer")

    def __init__(self) -> None:
        self.through: int | None = None  # the journal record the alarm ends at, once known
        self.timer: Timer | None = None


class RightOfWay:
    def __init__(self, max_claim_s: float = MAX_CLAIM_S, call_later: CallLater | None = None
                 ) -> None:
        self._max_claim_s = max_claim_s
        self._call_later = call_later  # the event loop's when None
        self._claims: list[Claim] = []
        self._on_clear: list[Callable[[], None]] = []
        self._published = 0  # the last journal record the MQTT sink told of, while held
        self.claims = 0  # claims made
        self.expired = 0  # claims ended by MAX_CLAIM_S, not by their alarm's publication

    @property
    def held(self) -> bool:
        """Whether an alarm is on its way: readings' work steps aside."""
        return bool(self._claims)

    def claim(self) -> Claim:
        claim = Claim()
        call_later = self._call_later or asyncio.get_running_loop().call_later
        claim.timer = call_later(self._max_claim_s, lambda: self._expire(claim))
        self._claims.append(claim)
        self.claims += 1
        return claim

    def journalled(self, claim: Claim, last_seq: int) -> None:
        """The alarm is journalled, its records up to `last_seq`."""
        claim.through = last_seq
        if last_seq <= self._published:  # the MQTT sink was quicker than the intake
            self.end(claim)

    def published(self, upto: int) -> None:
        """The MQTT sink published the journal's records up to `upto`."""
        self._published = max(self._published, upto)
        for claim in [c for c in self._claims if c.through is not None and c.through <= upto]:
            self.end(claim)

    def end(self, claim: Claim) -> None:
        """The claim is over (its alarm published, or not journalled)."""
        if claim not in self._claims:
            return
        self._claims.remove(claim)
        if claim.timer is not None:
            claim.timer.cancel()
        if not self._claims:
            callbacks, self._on_clear = self._on_clear, []
            for callback in callbacks:
                callback()

    def when_clear(self, callback: Callable[[], None]) -> None:
        """Call `callback` once no claim is held (now, when none is)."""
        if not self._claims:
            callback()
        elif callback not in self._on_clear:
            self._on_clear.append(callback)

    def cleared(self) -> asyncio.Future[None]:
        """A future done once no claim is held."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def clear() -> None:
            if not done.done():
                done.set_result(None)

        self.when_clear(clear)
        return done

    def _expire(self, claim: Claim) -> None:
        if claim in self._claims:
            self.expired += 1
            self.end(claim)
