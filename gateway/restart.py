"""Keep a long-running task alive: restart it with backoff after an unexpected error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.counters import Counters

log = logging.getLogger(__name__)

HEALTHY_S = 60.0  # a task that ran this long before failing starts again from the shortest delay


async def keep_running(
    name: str,
    run: Callable[[], Awaitable[None]],
    clock: Clock,
    counters: Counters,
    backoff: Backoff | None = None,
) -> None:
    """Run `run()` until cancelled; a crash is logged, counted and followed by a restart.

    Cancellation is never caught here: it ends the task as asked.
    """
    backoff = backoff or Backoff(0.5, 30.0)
    while True:
        started = clock.monotonic()
        try:
            await run()
            return
        except Exception:
            counters.inc("task_restarts", task=name)
            if clock.monotonic() - started >= HEALTHY_S:
                # a failure after a long healthy run is not a crash loop: the rules task
                # after a refused commit, say, must not wait the cap of failures long past
                backoff.reset()
            delay = backoff.next_delay()
            log.exception("task %s failed; restarting in %.1f s", name, delay)
            await clock.sleep(delay)
