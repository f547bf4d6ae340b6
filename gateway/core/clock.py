"""Time as a dependency: the system clock in production, a manual clock in tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A callback a clock will call, until cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall time for timestamps, monotonic time for durations, and sleeping."""

    def now_ms(self) -> int:
        """UTC epoch milliseconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend for `seconds` of this clock's time."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` on the event loop after `seconds` of this clock's time: the
        turn it is due in, where a task sleeping as long wakes turns later."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, callback)


class ManualClock:
    """A clock that moves only when `advance` is called; sleepers wake in deadline order."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._wall_ms = start_ms
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None] | _ManualTimer]] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._wall_ms

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(seconds, 0.0), next(self._order), fut))
        await fut

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(callback)
        heapq.heappush(self._sleepers, (self._mono + max(seconds, 0.0), next(self._order), timer))
        return timer

    def deadlines(self) -> list[float]:
        """When the sleepers and timers still waiting wake (monotonic seconds), earliest
        first."""
        return sorted(deadline for deadline, _, fut in self._sleepers if not fut.done())

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper whose deadline has passed."""
        self._mono += seconds
        self._wall_ms += round(seconds * 1000)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if isinstance(fut, _ManualTimer):
                fut.fire()
            elif not fut.done():
                fut.set_result(None)


class _ManualTimer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self._callback = None

    def done(self) -> bool:
        return self._callback is None

    def fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()
