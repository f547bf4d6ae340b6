"""The OneNET and CTWing receivers on the HTTP push port (a free loopback port), journalling
into a real journal, with a simulated platform for each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.ctwing.receiver import CtwingReceiver
from drivers.http_push import HttpPushReceiver
from drivers.onenet.receiver import OneNetReceiver
from drivers.profile import BUILTIN, ProfileLibrary
from gateway.core.clock import ManualClock
from gateway.core.config import CtwingDevice, OneNetDevice
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent, Reading
from gateway.journal import Journal
from gateway.ops.private_servers import free_port
from simulators.ctwing_platform import CtwingPlatform
from simulators.onenet_platform import OneNetPlatform
from tests.helpers import make_config

ONENET_TOKEN = "onenet-instance-token"
AES_KEY = "A1b2C3d4E5f6G7h8"  # 16 characters, as the platform generates them
CTWING_TOKEN = "ctwing-subscription-secret-0123"
PRODUCT = "0AbCdEf"
MAX_BODY = 16_384
DEVICES: list[dict[str, Any]] = [
    {"id": "smoke-1", "kind": "smoke", "transport": "onenet", "profile": "onenet-smoke",
     "onenet": {"product_id": PRODUCT, "device_name": "smoke-0001"}},
    {"id": "cover-1", "kind": "manhole", "transport": "onenet", "profile": "onenet-manhole",
     "onenet": {"imei": "869975034412345"}},
    {"id": "smoke-2", "kind": "smoke", "transport": "ctwing", "profile": "ctwing-smoke",
     "ctwing": {"device_id": "acf7baaee65e431eadfb8f5fe50e8b81"}},
    {"id": "cover-2", "kind": "manhole", "transport": "ctwing", "profile": "ctwing-manhole",
     "ctwing": {"imei": "862592051651472"}},
    {"id": "cover-3", "kind": "manhole", "transport": "ctwing",
     "profile": "ctwing-manhole-lwm2m",
     "ctwing": {"device_id": "59e0462b286a45e4bc5642109fd6ea90"}},
]


@dataclass
class JournalIntake:
    """Journals events with their receipt in a real journal; `gate` can hold commits."""

    journal: Journal
    journalled: list[DeviceEvent] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def event(self, event: DeviceEvent) -> None:
        await self.events([event])

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        self.waiting.set()
        await self.gate.wait()
        await self.journal.commit(events, receipt=receipt)
        self.journalled += events

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.alive.append(device)

    def unreachable(self, device: str) -> None:
        self.gone.append(device)


@dataclass
class PlatformRig:
    url: str
    counters: Counters
    intake: JournalIntake
    onenet: OneNetPlatform
    ctwing: CtwingPlatform
    onenet_receiver: OneNetReceiver
    ctwing_receiver: CtwingReceiver
    receiver: HttpPushReceiver

    def rejected(self, device: str, reason: str) -> int:
        return self.counters.get("rejected", device=device, reason=reason)


@contextlib.asynccontextmanager
async def open_platforms(tmp_path: Path, *, aes_key: str | None = None,
                         journal: Journal | None = None, onenet_timeout_s: float = 5.0,
                         http: dict[str, Any] | None = None) -> AsyncIterator[PlatformRig]:
    port = free_port()
    config = make_config(
        tmp_path, site="p", devices=DEVICES,
        http={"host": "127.0.0.1", "port": port, "max_body_bytes": MAX_BODY, **(http or {})},
        onenet={"token": ONENET_TOKEN, **({"aes_key": aes_key} if aes_key else {})},
        ctwing={"token": CTWING_TOKEN})
    assert config.http is not None
    assert config.onenet is not None
    assert config.ctwing is not None
    library = ProfileLibrary([BUILTIN])
    counters = Counters()
    clock = ManualClock()
    async with contextlib.AsyncExitStack() as stack:
        if journal is None:
            journal = await stack.enter_async_context(Journal(tmp_path / "platforms.db"))
        onenet = OneNetReceiver(config.onenet, [
            (d, library.get(d.profile or "")) for d in config.devices
            if isinstance(d, OneNetDevice)], clock, counters, journal)
        ctwing = CtwingReceiver(config.ctwing, [
            (d, library.get(d.profile or "")) for d in config.devices
            if isinstance(d, CtwingDevice)], clock, counters, journal)
        receiver = HttpPushReceiver(config.http, [], clock, counters,
                                    platforms=[onenet, ctwing],
                                    alarm_kinds=config.broker.alarm_lane_kinds)
        intake = JournalIntake(journal)
        task = asyncio.create_task(receiver.run(intake), name="test.platforms")
        ready = asyncio.create_task(receiver.ready.wait(), name="test.platforms.ready")
        await asyncio.wait((task, ready), timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        url = f"http://127.0.0.1:{port}"
        try:
            one = await stack.enter_async_context(OneNetPlatform(
                f"{url}/onenet", ONENET_TOKEN, aes_key, timeout_s=onenet_timeout_s,
                retry_scale=0))
            ct = await stack.enter_async_context(CtwingPlatform(
                f"{url}/ctwing/{CTWING_TOKEN}", retry_s=0))
            yield PlatformRig(url, counters, intake, one, ct, onenet, ctwing, receiver)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
