"""Device online/offline state and the supervisor that derives it from heartbeats."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.clock import Clock
from gateway.core.model import DeviceKind
from gateway.core.waiting import Signal

log = logging.getLogger(__name__)


OFFLINE_AFTER = 1.75  # heartbeat intervals of silence; one missed beat is tolerated


class Status(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(slots=True)
class _Device:
    kind: DeviceKind
    heartbeat_s: float
    last_seen: float  # monotonic; the time of adding until a first message arrives
    status: Status | None = None


class StatusBoard:
    """The current status of every device; publishers are woken on every change."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self.changed = Signal()
        # (device, kind, old, new) for every change; the gateway journals them as events
        self.transitions: asyncio.Queue[tuple[str, DeviceKind, Status | None, Status]] = (
            asyncio.Queue())
        self.listeners: list[Callable[[], None]] = []  # told of every change (the console)

    def add(self, device: str, kind: DeviceKind, heartbeat_s: float, now: float) -> None:
        self._devices[device] = _Device(kind, heartbeat_s, now)

    def set(self, device: str, status: Status) -> None:
        entry = self._devices[device]
        if entry.status is not status:
            self.transitions.put_nowait((device, entry.kind, entry.status, status))
            entry.status = status
            log.info("device %s is %s", device, status)
            self.changed.set()
            for listener in self.listeners:
                listener()

    def seen(self, device: str, now: float) -> None:
        """A good message arrived from `device` at monotonic time `now`."""
        entry = self._devices.get(device)
        if entry is None:
            return
        entry.last_seen = now
        if entry.status is not Status.ONLINE:  # per message: mostly online already
            self.set(device, Status.ONLINE)

    def unreachable(self, device: str) -> None:
        """A bridge says it lost `device`: offline now, whatever its heartbeat."""
        if device in self._devices:
            self.set(device, Status.OFFLINE)

    def statuses(self) -> list[tuple[str, DeviceKind, Status]]:
        return [(d, e.kind, e.status) for d, e in self._devices.items() if e.status is not None]

    def get(self, device: str) -> Status | None:
        return self._devices[device].status

    def last_seen(self, device: str) -> float:
        """Monotonic time of the device's last good message (of adding, before the first)."""
        return self._devices[device].last_seen

    def expire(self, now: float) -> list[str]:
        """Mark offline every device silent for 1.75 heartbeat intervals; returns them.

        Checked every quarter interval, so a silent device is offline within two intervals.
        """
        gone = []
        for device, entry in self._devices.items():
            if entry.heartbeat_s <= 0 or entry.status is Status.OFFLINE:
                continue
            if now - entry.last_seen >= OFFLINE_AFTER * entry.heartbeat_s:
                self.set(device, Status.OFFLINE)
                gone.append(device)
        return gone

    def tick_interval(self) -> float | None:
        beats = [e.heartbeat_s for e in self._devices.values() if e.heartbeat_s > 0]
        return min(beats) / 4 if beats else None


async def supervise(board: StatusBoard, clock: Clock) -> None:
    """Check heartbeats often enough that silence is noticed within two intervals."""
    interval = board.tick_interval()
    if interval is None:
        return
    while True:
        await clock.sleep(interval)
        board.expire(clock.monotonic())
