"""Handing events over when the driver is their only source.

A wired button, a polled register, a serial line and a terminal's event stream give
nothing again: once their driver has seen an edge, a change, a frame or a part, the event
exists only in its memory. Events the journal refuses (a write error, a full disk without
the alarm reserve) are then handed over again, with backoff, until they are taken: the
driver waits for them meanwhile, so that what comes later follows them in order.
"""

from __future__ import annotations

import logging
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
            first = events[0]
            counters.inc("journal_retries", device=first.device)
            log.error("%s %s from %s%s not journalled (%s); handed over again in %.2f s",
                      first.kind, first.type, first.device,
                      f" and {len(events) - 1} more" if len(events) > 1 else "", exc, delay)
            await clock.sleep(delay)
