"""Handing events over when the driver is their only source.

A wired button, a polled register, a serial line and a terminal's event stream give
nothing again: once their driver has seen an edge, a change, a frame or a part, the event
exists only in its memory. Events the journal refuses (a write error, a full disk without
the alarm reserve) are then handed over again, with backoff, until they are taken: the
driver waits for them meanwhile, so that what comes later follows them in order.

A driver that must go on meanwhile (a bus polling its other devices, a serial port or a
Dahua stream read on for their readings and heartbeats) hands its events to a `Backlog`
instead: a refused event and the source's later ones wait there, in order, and are handed
over again in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from drivers.intake import Intake
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import DeviceEvent

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.05  # the first retry after this, then doubling
RETRY_MAX_S = 5.0  # up to this
BACKLOG_MAX = 64  # events of one source waiting in the background; then its driver waits

T = TypeVar("T")


async def hand_over(intake: Intake, event: DeviceEvent, clock: Clock,
                    counters: Counters) -> None:
    """Return once `intake` has taken `event` (see `keep_handing`)."""
    await keep_handing(lambda: intake.event(event), [event], clock, counters)


async def keep_handing(give: Callable[[], Awaitable[T]], events: Sequence[DeviceEvent],
                       clock: Clock, counters: Counters) -> T:
    """Call `give` (which journals `events` in one commit) until it returns, and return
    what it returns; each refusal is counted as `journal_retries{device}` and logged as an
    error."""
    backoff: Backoff | None = None
    while True:
        try:
            return await give()
        except Exception as exc:  # not received: nothing else would give them again
            backoff = backoff or Backoff(RETRY_MIN_S, RETRY_MAX_S)
            delay = max(backoff.next_delay(), RETRY_MIN_S)
            _refused(events, exc, delay, counters)
            await clock.sleep(delay)


def _refused(events: Sequence[DeviceEvent], exc: Exception, delay: float,
             counters: Counters) -> None:
    first = events[0]
    counters.inc("journal_retries", device=first.device)
    log.error("%s %s from %s%s not journalled (%s); handed over again in %.2f s",
              first.kind, first.type, first.device,
              f" and {len(events) - 1} more" if len(events) > 1 else "", exc, delay)


class Backlog:
    """The events of one source, handed over in order; once a commit is refused, its
    events and the source's later ones wait here and are handed over again by a task of
    the backlog's own, so that the driver serves its other sources (or reads on)
    meanwhile. When `limit` commits wait, a give waits for room. Used as an async context
    manager by the driver's task: the backlog's task ends with it."""

    def __init__(self, intake: Intake, clock: Clock, counters: Counters,
                 limit: int = BACKLOG_MAX) -> None:
        self._intake = intake
        self._clock = clock
        self._counters = counters
        self._limit = limit
        self._waiting: deque[tuple[Sequence[DeviceEvent], Callable[[], Awaitable[object]]]]
        self._waiting = deque()
        self._room = asyncio.Event()
        self._draining: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Backlog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        draining = self._draining
        if draining is not None:
            draining.cancel()
            await asyncio.wait([draining])  # its own end; a stop of this task still stops

    @property
    def waiting(self) -> int:
        """Commits refused and not yet taken."""
        return len(self._waiting)

    async def give(self, event: DeviceEvent) -> None:
        """Return once `event` is journalled or waits its turn here."""
        await self.give_all([event], lambda: self._intake.event(event))

    async def give_all(self, events: Sequence[DeviceEvent],
                       give: Callable[[], Awaitable[object]]) -> None:
        """Return once `give` (which journals `events` in one commit) returned, or the
        commit waits its turn here."""
        if not self._waiting:
            try:
                await give()
                return
            except Exception as exc:  # not received: nothing else would give them again
                _refused(events, exc, RETRY_MIN_S, self._counters)
        while len(self._waiting) >= self._limit:
            self._room.clear()
            await self._room.wait()
        self._waiting.append((events, give))
        if self._draining is None:
            self._draining = asyncio.create_task(
                self._drain(), name=f"backlog[{events[0].device}]")

    async def _drain(self) -> None:
        try:
            await self._clock.sleep(RETRY_MIN_S)
            while self._waiting:
                events, give = self._waiting[0]
                await keep_handing(give, events, self._clock, self._counters)
                self._waiting.popleft()
                self._room.set()
        finally:
            self._draining = None
            if self._waiting:  # a stop: these were never journalled
                events = [e for waiting, _ in self._waiting for e in waiting]
                log.error("%d event(s) from %s not journalled at the stop, the first %s %s",
                          len(events), events[0].device, events[0].kind, events[0].type)
