"""The HTTP push receiver on a free loopback port, with a simulated device per device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.http_push import HttpPushReceiver
from drivers.profile import BUILTIN, ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from gateway.core.clock import ManualClock
from gateway.core.config import HttpDevice
from gateway.core.counters import Counters
from gateway.core.model import DeviceEvent, Reading
from gateway.ops.private_servers import free_port
from simulators.http_pusher import HttpPusher
from tests.helpers import make_config

KEY = Pseudonymiser(b"site-secret-key-for-tests-only!!")
TOKENS = {"door-h1": "door-token-0123456789abcdef", "gate-h1": "gate-token-0123456789abcdef"}
PROFILES = {"door-h1": ("access", "http-access-controller"),
            "gate-h1": ("temp_gate", "http-temp-gate")}
MAX_BODY = 1024


class Collected:
    """Intake that keeps what the receiver hands over; `gate` can hold the journal shut."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self.readings: list[Reading] = []
        self.alive: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def event(self, event: DeviceEvent) -> None:
        self.waiting.set()
        await self.gate.wait()
        self.events.append(event)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.alive.add(device)


@dataclass
class Rig:
    url: str
    port: int
    clock: ManualClock
    counters: Counters
    intake: Collected
    pushers: dict[str, HttpPusher]
    receiver: HttpPushReceiver

    def rejected(self, device: str, reason: str) -> int:
        return self.counters.get("rejected", device=device, reason=reason)


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, *, http: dict[str, Any] | None = None,
                   auth: Literal["bearer", "signed"] = "bearer",
                   pusher: dict[str, Any] | None = None,
                   receiver: dict[str, Any] | None = None) -> AsyncIterator[Rig]:
    """The receiver with `http` as its [http] settings, every device using `auth`; `pusher`:
    more arguments of every HttpPusher (ca_file, client_cert); `receiver`: more arguments
    of the HttpPushReceiver (alarm_kinds, rate_hz, burst_s)."""
    port = free_port()
    settings = {"host": "127.0.0.1", "port": port, "max_body_bytes": MAX_BODY, **(http or {})}
    config = make_config(
        tmp_path, site="h", http=settings,
        devices=[{"id": device, "kind": kind, "transport": "http", "profile": profile,
                  "http": {"token": TOKENS[device], "auth": auth}}
                 for device, (kind, profile) in PROFILES.items()])
    assert config.http is not None
    library = ProfileLibrary([BUILTIN])
    devices = []
    for device in config.devices:
        assert isinstance(device, HttpDevice)
        assert device.profile is not None
        devices.append((device, library.get(device.profile)))
    counters = Counters()
    clock = ManualClock()
    push_receiver = HttpPushReceiver(config.http, devices, clock, counters, KEY,
                                     **(receiver or {}))
    intake = Collected()
    task = asyncio.create_task(push_receiver.run(intake), name="test.http_push")
    ready = asyncio.create_task(push_receiver.ready.wait(), name="test.http_push.ready")
    await asyncio.wait((task, ready), timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    url = f"{'https' if config.http.tls else 'http'}://127.0.0.1:{port}"
    async with contextlib.AsyncExitStack() as stack:
        pushers = {device.id: await stack.enter_async_context(
            HttpPusher(profile, url, device.id, TOKENS[device.id], max_body_bytes=MAX_BODY,
                       auth=auth, now_ms=clock.now_ms, **(pusher or {})))
            for device, profile in devices}
        try:
            yield Rig(url, port, clock, counters, intake, pushers, push_receiver)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
