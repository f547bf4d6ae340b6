"""Handing an event over when the driver is its only source.

A wired button, a polled register and a serial line give nothing again: once their
driver has seen an edge, a change or a frame, the event exists only in its memory. An
event the journal refuses (a write error, a full disk without the alarm reserve) is then
handed over again, with backoff, until it is taken: the driver waits for it meanwhile,
so that what comes later follows it in order.
"""

from __future__ import annotations

import logging

from drivers.intake import Intake
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import DeviceEvent

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.05  # the first retry after this, then doubling
RETRY_MAX_S = 5.0  # up to this


async def hand_over(intake: Intake, event: DeviceEvent, clock: Clock,
                    counters: Counters) -> None:
    """Return once `intake` has taken `event`; each refusal is counted as
    `journal_retries{device}` and logged as an error."""
    backoff: Backoff | None = None
    while True:
        try:
            await intake.event(event)
            return
        except Exception as exc:  # not received: nothing else would give it again
            backoff = backoff or Backoff(RETRY_MIN_S, RETRY_MAX_S)
            delay = max(backoff.next_delay(), RETRY_MIN_S)
            counters.inc("journal_retries", device=event.device)
            log.error("%s %s from %s not journalled (%s); handed over again in %.2f s",
                      event.kind, event.type, event.device, exc, delay)
            await clock.sleep(delay)
