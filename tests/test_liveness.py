"""Device status: offline within two heartbeat intervals of silence, online on a good message."""

from __future__ import annotations

import asyncio

from gateway.clock import ManualClock
from gateway.model import DeviceKind
from gateway.status import Status, StatusBoard, supervise


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_silent_device_goes_offline_within_two_intervals_and_back_online() -> None:
    clock = ManualClock()
    board = StatusBoard()
    board.add("sos-1", DeviceKind.ELDER_BUTTON, heartbeat_s=60, now=clock.monotonic())
    board.add("wired", DeviceKind.ELDER_BUTTON, heartbeat_s=0, now=clock.monotonic())
    board.set("wired", Status.ONLINE)
    task = asyncio.create_task(supervise(board, clock))
    try:
        await _settle()
        board.seen("sos-1", clock.monotonic())
        assert board.get("sos-1") is Status.ONLINE
        for _ in range(6):  # 90 s: one missed heartbeat is tolerated
            clock.advance(15)
            await _settle()
        assert board.get("sos-1") is Status.ONLINE
        clock.advance(15)  # 105 s: 1.75 intervals, well within two
        await _settle()
        assert board.get("sos-1") is Status.OFFLINE
        assert board.get("wired") is Status.ONLINE  # no heartbeat: never expires
        board.seen("sos-1", clock.monotonic())
        assert board.get("sos-1") is Status.ONLINE
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_device_never_heard_from_goes_offline_after_two_intervals() -> None:
    clock = ManualClock()
    board = StatusBoard()
    board.add("sos-2", DeviceKind.ELDER_BUTTON, heartbeat_s=10, now=clock.monotonic())
    assert board.get("sos-2") is None
    clock.advance(17)
    assert board.expire(clock.monotonic()) == []
    clock.advance(1)
    assert board.expire(clock.monotonic()) == ["sos-2"]
    assert board.changed.is_set()
