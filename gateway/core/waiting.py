"""Waiting for the first of several things to happen.

A wait is on the hot path: the rules, the sinks and the link wait between turns many times
a second, and an alarm's way from the journal to the broker crosses two such waits. A
`Signal` (an `asyncio.Event`) wakes a `first_of` waiting on it directly: no task per wait,
and the waiter's task is scheduled by the `set` itself. A plain event is waited on through
a task of its own, which costs two more turns of the loop before the waiter runs.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Signal(asyncio.Event):
    """An `asyncio.Event` that `first_of` can wait on without a task."""

    def __init__(self) -> None:
        super().__init__()
        self._firsts: list[asyncio.Future[None]] = []  # first_of waiters to wake
        # whether `set` has anything to do: False while set with no one to wake. Read as
        # an attribute, for one who would set it for every reading pushed
        self.armed = True

    def set(self) -> None:
        self.armed = False
        if not self.is_set():
            super().set()
        if self._firsts:
            firsts, self._firsts = self._firsts, []
            for waiter in firsts:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        super().clear()
        self.armed = True

    def _join(self, waiter: asyncio.Future[None]) -> None:
        self._firsts.append(waiter)
        self.armed = True

    def _leave(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._firsts:
            self._firsts.remove(waiter)


async def first_of(*waits: asyncio.Event | asyncio.Future[Any]) -> None:
    """Return when any of the events is set or any of the futures is done. The futures are
    not cancelled, whatever ends the wait."""
    signals: list[Signal] = []
    futures: list[asyncio.Future[Any]] = []
    made: list[asyncio.Future[Any]] = []  # a task for each plain event, cancelled at the end
    for w in waits:
        if isinstance(w, asyncio.Event):
            if w.is_set():
                return
            if isinstance(w, Signal):
                signals.append(w)
            else:
                made.append(asyncio.ensure_future(w.wait()))
        elif w.done():
            return
        else:
            futures.append(w)
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for signal in signals:
        signal._join(waiter)
    for future in futures + made:
        future.add_done_callback(wake)
    try:
        await waiter
    finally:
        for signal in signals:
            signal._leave(waiter)
        for future in futures:
            future.remove_done_callback(wake)
        for task in made:
            task.cancel()
