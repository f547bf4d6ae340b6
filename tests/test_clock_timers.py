"""Timers of the injected clocks: called once when due, never once cancelled."""

from __future__ import annotations

import asyncio

from gateway.core.clock import ManualClock, SystemClock


def test_a_manual_timer_fires_when_its_time_has_come_and_not_after_a_cancel() -> None:
    clock = ManualClock()
    fired: list[str] = []
    # binary fractions: the sums of the advances are exact
    clock.call_later(0.5, lambda: fired.append("debounce"))
    cancelled = clock.call_later(0.25, lambda: fired.append("cancelled"))
    assert clock.deadlines() == [0.25, 0.5]
    cancelled.cancel()
    assert clock.deadlines() == [0.5]
    clock.advance(0.375)
    assert fired == []
    clock.advance(0.125)
    assert fired == ["debounce"]
    clock.advance(1.0)
    assert fired == ["debounce"]  # once
    assert clock.deadlines() == []


async def test_manual_timers_and_sleepers_are_woken_in_deadline_order() -> None:
    clock = ManualClock()
    order: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(0.002)
        order.append("sleeper")

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)  # the sleeper is waiting
    clock.call_later(0.001, lambda: order.append("first timer"))
    clock.call_later(0.003, lambda: order.append("second timer"))
    clock.advance(0.003)
    await task
    # the timers run inside advance(); the sleeper's task resumes in a later turn
    assert order == ["first timer", "second timer", "sleeper"]


async def test_a_system_timer_runs_on_the_loop_after_its_delay() -> None:
    clock = SystemClock()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    started = clock.monotonic()
    clock.call_later(0.02, lambda: done.set_result(clock.monotonic()))
    never = clock.call_later(0.01, lambda: done.set_result(-1.0))
    never.cancel()
    assert await asyncio.wait_for(done, 5) - started >= 0.02 - 0.001
