"""The push port serving Hikvision terminals on a free loopback port, with simulated ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.hikvision.push import HikvisionPushes
from drivers.http_push import HttpPushReceiver
from gateway.core.clock import ManualClock
from gateway.core.config import HikvisionDevice
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent, Reading
from gateway.ops.private_servers import free_port
from simulators.hikvision_terminal import HikvisionTerminal
from tests.drivers.push_rig import KEY
from tests.helpers import Refusing, make_config

PASSWORDS = {"door-hk": "door-hk-push-pass", "gate-hk": "gate-hk-push-pass",
             "door-far": "door-far-push-pass", "door-basic": "door-basic-pass"}


class Journalled(Refusing):
    """Intake that keeps what the drivers hand over, with the receipts of each message (or
    refuses it, see `Refusing`)."""

    def __init__(self, receipts: Receipts) -> None:
        super().__init__()
        self.journalled: list[DeviceEvent] = []
        self.readings: list[Reading] = []
        self.alive: set[str] = set()
        self._receipts = receipts

    async def event(self, event: DeviceEvent) -> None:
        await self.events([event])

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        self.refusing(events)
        self.journalled.extend(events)
        if receipt is not None:
            self._receipts.note(receipt)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.alive.add(device)

    def unreachable(self, device: str) -> None:
        self.alive.discard(device)


class Receipts:
    """The journal's receipt book, in memory."""

    def __init__(self) -> None:
        self.kept: dict[str, Receipt] = {}

    def receipt(self, key: str) -> Receipt | None:
        return self.kept.get(key)

    def note(self, receipt: Receipt) -> None:
        self.kept[receipt.key] = receipt

    async def forget_receipts(self, prefix: str) -> None:
        for key in [k for k in self.kept if k.startswith(prefix)]:
            del self.kept[key]


def terminal_config(device: str, kind: str, addresses: list[str],
                    auth: str = "digest") -> dict[str, Any]:
    return {"id": device, "kind": kind, "transport": "hikvision",
            "hikvision": {"username": "alarmserver", "password": PASSWORDS[device],
                          "auth": auth, "addresses": addresses}}


@dataclass
class HikRig:
    url: str
    clock: ManualClock
    counters: Counters
    intake: Journalled
    receipts: Receipts
    terminals: dict[str, HikvisionTerminal]
    receiver: HttpPushReceiver

    def rejected(self, device: str, reason: str) -> int:
        return self.counters.get("rejected", device=device, reason=reason)


@contextlib.asynccontextmanager
async def open_hikvision(tmp_path: Path, *, http: dict[str, Any] | None = None,
                         layout: str = "multipart") -> AsyncIterator[HikRig]:
    port = free_port()
    config = make_config(
        tmp_path, site="hk",
        http={"host": "127.0.0.1", "port": port, "max_body_bytes": 4096, **(http or {})},
        devices=[terminal_config("door-hk", "access", ["127.0.0.1"]),
                 terminal_config("gate-hk", "temp_gate", ["127.0.0.0/8"]),
                 terminal_config("door-far", "access", ["192.0.2.10"]),
                 terminal_config("door-basic", "access", ["127.0.0.1"], auth="basic")])
    assert config.http is not None
    terminals_config = [d for d in config.devices if isinstance(d, HikvisionDevice)]
    counters, clock, receipts = Counters(), ManualClock(), Receipts()
    routes = HikvisionPushes(terminals_config, config.http, clock, counters, KEY, receipts)
    receiver = HttpPushReceiver(config.http, [], clock, counters, KEY, platforms=[routes],
                                alarm_kinds=config.broker.alarm_lane_kinds)
    intake = Journalled(receipts)
    task = asyncio.create_task(receiver.run(intake), name="test.hikvision_push")
    ready = asyncio.create_task(receiver.ready.wait(), name="test.hikvision_push.ready")
    await asyncio.wait((task, ready), timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    base = f"http://127.0.0.1:{port}"
    async with contextlib.AsyncExitStack() as stack:
        terminals = {d.id: await stack.enter_async_context(HikvisionTerminal(
            f"{base}/hikvision/{d.id}", username=d.hikvision.username,
            password=d.hikvision.password, auth=d.hikvision.auth,
            layout=layout))  # type: ignore[arg-type]
            for d in terminals_config}
        try:
            yield HikRig(base, clock, counters, intake, receipts, terminals, receiver)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
