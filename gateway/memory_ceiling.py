"""The process's resident memory held under `limits.memory_mb`.

Every queue is bounded on its own (the intake by messages and bytes derived from the
ceiling, the readings by `journal.telemetry_capacity`); this is the backstop for what no
single bound sees. The resident set size is read from /proc/self/statm (one small read)
every SAMPLE_S once above half the ceiling, every RELAXED_S below (an idle gateway wakes
for it once a second); above HIGH of the ceiling the broker sessions read only a few
messages ahead of the handlers (TCP holds the rest in the broker), and read as usual
again below LOW. Python rarely gives freed memory back, so the
tight mode may last after a burst: reading goes on then, in small steps, never stops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from gateway.core.clock import Clock
from gateway.core.counters import Counters

log = logging.getLogger(__name__)

SAMPLE_S = 0.1  # above half the ceiling
RELAXED_S = 1.0  # below half: the intake's own bounds cannot reach HIGH within this
RELAXED_BELOW = 0.5
HIGH = 0.85  # of the ceiling: the sessions read a few messages ahead only
LOW = 0.75  # of the ceiling: as usual again
INTAKE_SHARE = 16  # each broker session holds at most ceiling / INTAKE_SHARE payload bytes
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size; 0 where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as statm:  # procfs: no disk, no waiting
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def intake_bytes(ceiling: int) -> int:
    """Payload bytes a broker session may hold read and not yet handled."""
    return max(ceiling // INTAKE_SHARE, 1 << 20)


class MemoryCeiling:
    """Watches the resident set size and tells the `listeners` when to read sparingly."""

    def __init__(self, ceiling: int, clock: Clock, counters: Counters,
                 read: Callable[[], int] = resident_bytes) -> None:
        self.ceiling = ceiling
        self.read = read
        self.resident = 0  # the latest sample
        self.peak = 0
        self.tight = False
        self.listeners: list[Callable[[bool], None]] = []
        self._clock = clock
        self._counters = counters

    def check(self) -> bool:
        """Take one sample; whether the sessions should read sparingly."""
        resident = self.resident = self.read()
        self.peak = max(self.peak, resident)
        tight = (resident >= self.ceiling * HIGH if not self.tight
                 else resident >= self.ceiling * LOW)
        if tight != self.tight:
            self.tight = tight
            if tight:
                self._counters.inc("memory_tight")
                log.warning("resident memory %.0f MiB is near the ceiling of %.0f MiB "
                            "(limits.memory_mb): the broker sessions read a few messages "
                            "ahead only, the broker holds the rest", resident / 2**20,
                            self.ceiling / 2**20)
            else:
                log.info("resident memory %.0f MiB: reading as usual again", resident / 2**20)
            for listener in self.listeners:
                listener(tight)
        return tight

    async def run(self) -> None:
        while True:
            self.check()
            relaxed = self.resident < self.ceiling * RELAXED_BELOW
            await self._clock.sleep(RELAXED_S if relaxed else SAMPLE_S)
