"""The GB/T 26875.3 server on a free loopback port over a real journal, and a simulated
transmission device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.gb26875.server import Gb26875Server
from gateway.core.clock import ManualClock
from gateway.core.config import Gb26875Device
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent, Reading
from gateway.journal import Journal
from gateway.ops.private_servers import free_port
from simulators.gb26875_device import TransmissionDevice
from tests.helpers import make_config

PANEL = 889  # the transmission device's address, as in the published examples
OTHER = 890


def fire_devices() -> list[dict[str, Any]]:
    """Two transmission devices; the first stands for two detectors of building 3."""
    return [
        {"id": "fire-panel-3", "kind": "smoke", "transport": "gb26875", "heartbeat_s": 60,
         "location": {"building": "3"}, "gb26875": {"address": PANEL}},
        {"id": "smoke-3-2-017", "kind": "smoke", "transport": "gb26875",
         "location": {"building": "3", "floor": 2},
         "gb26875": {"via": "fire-panel-3", "component": "1-3-017", "zone": "east stair"}},
        {"id": "smoke-3-5-001", "kind": "smoke", "transport": "gb26875",
         "location": {"building": "3", "floor": 5},
         "gb26875": {"via": "fire-panel-3", "component": "1-5-001"}},
        {"id": "fire-panel-4", "kind": "smoke", "transport": "gb26875", "heartbeat_s": 60,
         "location": {"building": "4"}, "gb26875": {"address": OTHER}},
    ]


class JournalIntake:
    """The gateway's intake over a real journal; `gate` holds commits back."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.readings: list[Reading] = []
        self.alive: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.refuse = 0  # commits still to refuse, as a full disk would

    async def event(self, event: DeviceEvent) -> None:
        await self.events([event])

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        self.waiting.set()
        await self.gate.wait()
        if self.refuse:
            self.refuse -= 1
            raise OSError("the journal refused the commit")
        await self.journal.commit(events, receipt=receipt)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.alive.add(device)

    def unreachable(self, device: str) -> None:
        raise AssertionError("a fire panel's server has no bridge to lose a device")

    async def journalled(self) -> list[DeviceEvent]:
        batch = await self.journal.read_after(0)
        return [e.record for e in batch.entries if isinstance(e.record, DeviceEvent)]


@dataclass
class Rig:
    server: Gb26875Server
    task: asyncio.Task[None]
    intake: JournalIntake
    counters: Counters
    clock: ManualClock

    def device(self, address: int = PANEL, *, udp: bool = False,
               **options: Any) -> TransmissionDevice:
        port = self.server.udp_port if udp else self.server.port
        assert port is not None
        return TransmissionDevice("127.0.0.1", port, address, udp=udp, **options)

    def rejected(self, reason: str, device: str = "fire-panel-3") -> int:
        return self.counters.get("rejected", device=device, reason=reason)


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, **server: Any) -> AsyncIterator[Rig]:
    config = make_config(tmp_path, site="f", devices=fire_devices(),
                         gb26875={"host": "127.0.0.1", "port": free_port(), **server})
    assert config.gb26875 is not None
    devices = [d for d in config.devices if isinstance(d, Gb26875Device)]
    counters = Counters()
    clock = ManualClock()
    async with Journal(config.journal.path) as journal:
        server_ = Gb26875Server(config.gb26875, devices, clock, counters, journal)
        intake = JournalIntake(journal)
        task = asyncio.create_task(server_.run(intake), name="test.gb26875")
        ready = asyncio.create_task(server_.ready.wait(), name="test.gb26875.ready")
        await asyncio.wait((task, ready), timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        try:
            yield Rig(server_, task, intake, counters, clock)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
