"""`first_of`: the first of several events and futures, and a `Signal` woken without a task."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.waiting import Signal, first_of


async def _order_of_wake(event: asyncio.Event) -> list[str]:
    """Set `event` under a waiting `first_of`, and queue a callback right after the set:
    which runs first, the waiter or the callback?"""
    order: list[str] = []

    async def waiting() -> None:
        await first_of(event, asyncio.get_running_loop().create_future())
        order.append("waiter")

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)  # the waiter is waiting
    event.set()
    asyncio.get_running_loop().call_soon(order.append, "callback queued after the set")
    await asyncio.wait_for(task, 1)
    for _ in range(5):
        await asyncio.sleep(0)
    return order


async def test_a_signal_wakes_its_waiter_in_the_next_turn_a_plain_event_later() -> None:
    assert await _order_of_wake(Signal()) == ["waiter", "callback queued after the set"]
    # a plain event is waited on through a task: the waiter runs turns later
    assert await _order_of_wake(asyncio.Event()) == ["callback queued after the set", "waiter"]


@pytest.mark.parametrize("kind", [Signal, asyncio.Event])
async def test_the_first_of_events_and_futures_ends_the_wait(kind: type[asyncio.Event]) -> None:
    loop = asyncio.get_running_loop()
    event, other = kind(), kind()
    future: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.create_task(first_of(event, other, future))
    await asyncio.sleep(0)
    assert not waiting.done()
    other.set()
    await asyncio.wait_for(waiting, 1)
    assert not future.done()  # a future it watched is left as it was

    waiting = asyncio.create_task(first_of(event, future))
    await asyncio.sleep(0)
    future.set_result(None)
    await asyncio.wait_for(waiting, 1)


async def test_what_is_set_or_done_already_returns_at_once() -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    signal = Signal()
    signal.set()
    await asyncio.wait_for(first_of(Signal(), done), 0.1)
    await asyncio.wait_for(first_of(signal, asyncio.Event()), 0.1)


async def test_a_cancelled_wait_leaves_its_futures_and_forgets_its_waiter() -> None:
    loop = asyncio.get_running_loop()
    signal, plain = Signal(), asyncio.Event()
    future: asyncio.Future[None] = loop.create_future()
    tasks_before = len(asyncio.all_tasks())
    waiting = asyncio.create_task(first_of(signal, plain, future))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0)
    assert not future.cancelled()
    assert len(asyncio.all_tasks()) == tasks_before  # the plain event's task is gone too
    for _ in range(100):
        ending = asyncio.create_task(first_of(signal, future))
        await asyncio.sleep(0)
        ending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ending
    assert signal._firsts == []  # waits that ended do not pile up in the signal
    signal.set()
    assert signal.is_set()
    assert await asyncio.wait_for(signal.wait(), 0.1)
    signal.clear()
    assert not signal.is_set()


async def test_a_signal_is_armed_unless_setting_it_would_do_nothing() -> None:
    """`armed` tells one who sets a signal per reading whether `set` has anything to do:
    not while it is set with no one waiting."""
    signal = Signal()
    assert signal.armed
    signal.set()
    assert not signal.armed
    signal.clear()
    assert signal.armed
    signal.set()
    waiter = asyncio.ensure_future(first_of(signal))
    await asyncio.sleep(0)
    assert waiter.done()  # set already: the wait returned at once
    signal.clear()
    waiter = asyncio.ensure_future(first_of(signal))
    await asyncio.sleep(0)
    assert signal.armed
    assert not waiter.done()
    signal.set()
    assert not signal.armed
    await asyncio.sleep(0)
    assert waiter.done()
