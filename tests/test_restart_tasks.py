"""A crashed task is restarted with backoff; cancellation still ends it."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.core.backoff import Backoff
from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.restart import HEALTHY_S, keep_running


async def test_crashes_are_counted_and_the_task_restarted() -> None:
    clock = ManualClock()
    counters = Counters()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise ValueError("bug")

    task = asyncio.create_task(keep_running("t", flaky, clock, counters))
    while not task.done():
        await asyncio.sleep(0)
        clock.advance(60)
    await task
    assert runs == [0, 1, 2]
    assert counters.get("task_restarts", task="t") == 2


async def test_cancellation_is_not_swallowed() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(keep_running("t", forever, ManualClock(), Counters()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failure_after_a_long_healthy_run_restarts_from_the_shortest_delay() -> None:
    """A crash loop backs off to the cap; a task that then ran a long while fails once
    (a refused commit, say) and is started again within the first delay, not the cap."""
    clock = ManualClock()
    backoff = Backoff(0.5, 30.0, random.Random(7))
    runs: list[float] = []

    async def failing() -> None:
        runs.append(clock.monotonic())
        if len(runs) == 8:
            await clock.sleep(HEALTHY_S)  # healthy for a while, then one failure
        if len(runs) < 10:
            raise ValueError("bug")

    task = asyncio.create_task(keep_running("t", failing, clock, Counters(), backoff))
    while not task.done():
        await asyncio.sleep(0)
        clock.advance(0.01)
    await task
    assert backoff.attempt == 2  # reset by the long run: two delays drawn since
    restarted_after = runs[8] - runs[7] - HEALTHY_S
    assert restarted_after <= 0.5 + 0.02  # within the first delay's ceiling (+ ticks)
