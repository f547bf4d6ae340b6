"""A crashed task is restarted with backoff; cancellation still ends it."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.restart import keep_running


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
