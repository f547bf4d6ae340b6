"""Hikvision and Dahua terminals through the whole gateway to real Mosquitto and
VictoriaMetrics: alerts from the shipped rules, and nothing personal anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from drivers.dahua.client import DahuaStream
from gateway.core.model import Alert, AlertState, DeviceEvent
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.ops.store_query import export
from gateway.status_report import status_path
from gateway.supervisor import Gateway
from simulators.dahua_terminal import DahuaTerminal
from simulators.hikvision_terminal import FACE_JPEG, RESIDENT, HikvisionTerminal
from tests.helpers import Seen, Watcher, eventually, make_config, running, unique_site

KEY_ENV = "SCGW_TEST_PSEUDONYM_KEY"
PUSH_PASSWORD = "terminal-push-pass"
DAHUA_CARD, DAHUA_USER, DAHUA_NAME = "7A11C0DE", "DH-4471", "Liu Yang"


@dataclass
class Site:
    site: str
    gateway: Gateway
    watcher: Watcher
    door: HikvisionTerminal
    gate: HikvisionTerminal
    dahua: DahuaTerminal

    async def alert(self, rule: str, device: str) -> Alert:
        topic = f"sc/{self.site}/alerts/{rule}/{device}"
        seen = await self.watcher.next(lambda s: s.topic == topic)
        return msgspec.json.decode(seen.payload, type=Alert)


def _terminal(device: str, kind: str) -> dict[str, Any]:
    return {"id": device, "kind": kind, "transport": "hikvision",
            "location": {"building": "7"},
            "hikvision": {"username": "alarmserver", "password": PUSH_PASSWORD,
                          "addresses": ["127.0.0.1"]}}


@contextlib.asynccontextmanager
async def compound(tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
                   monkeypatch: pytest.MonkeyPatch, **dahua_settings: Any
                   ) -> AsyncIterator[Site]:
    monkeypatch.setenv(KEY_ENV, "compound-secret-key-0123456789")
    site = unique_site("e2e-term")
    port = free_port()
    async with DahuaTerminal() as dahua:
        config = make_config(
            tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url,
            pseudonym_key_env=KEY_ENV, http={"host": "127.0.0.1", "port": port},
            devices=[_terminal("door-hk", "access"), _terminal("gate-hk", "temp_gate"),
                     {"id": "door-dh", "kind": "access", "transport": "dahua",
                      "location": {"building": "5"},
                      "dahua": {"host": "127.0.0.1", "port": dahua.port,
                                "username": "admin", "password": "dahua-admin-1",
                                "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
                                **dahua_settings}}])
        base = f"http://127.0.0.1:{port}/hikvision"
        async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/#", "terminals"
        ) as watcher, HikvisionTerminal(f"{base}/door-hk", username="alarmserver",
                                        password=PUSH_PASSWORD) as door, HikvisionTerminal(
            f"{base}/gate-hk", username="alarmserver", password=PUSH_PASSWORD) as gate:
            await eventually(lambda: gateway.connected, what="connected")
            (stream,) = [d for d in gateway.drivers if isinstance(d, DahuaStream)]
            await eventually(stream.attached.is_set, what="the Dahua stream open")
            yield Site(site, gateway, watcher, door, gate, dahua)


async def test_a_forced_door_on_a_hikvision_terminal_raises_its_alert(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with compound(tmp_path, mosquitto, victoria, monkeypatch) as c:
        assert await c.door.push(c.door.access(5, 0x1B, None)) == 200  # door open abnormal
        alert = await c.alert("access.forced_open", "door-hk")
        assert alert.state is AlertState.FIRING
        assert await c.door.push(c.door.access(5, 0x1A, None)) == 200  # door closed
        assert (await c.alert("access.forced_open", "door-hk")).state is AlertState.RESOLVED


async def test_a_fever_on_a_thermal_terminal_raises_an_alert(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with compound(tmp_path, mosquitto, victoria, monkeypatch) as c:
        assert await c.gate.push(c.gate.temperature(38.4, abnormal=True)) == 200
        alert = await c.alert("temp_gate.fever", "gate-hk")
        assert (alert.state, alert.value) == (AlertState.FIRING, 38.4)


async def test_nothing_personal_leaves_the_drivers(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    published: list[Seen] = []
    async with compound(tmp_path, mosquitto, victoria, monkeypatch) as c, Watcher(
            mosquitto.port, f"sc/{c.site}/#", "everything") as everything_watcher:
        door, gate = c.door, c.gate
        pushes = [(door, door.access(5, 0x4B)), (door, door.access(5, 0x06)),
                  (door, door.access(5, 0x1B, None)), (door, door.access(5, 0x1A, None)),
                  (gate, gate.temperature(36.7, abnormal=False)),
                  (gate, gate.temperature(38.6, abnormal=True, mask="no"))]
        for terminal, alert in pushes:
            assert await terminal.push(alert) == 200
        c.dahua.access(granted=True, card=DAHUA_CARD, user=DAHUA_USER, name=DAHUA_NAME,
                       method=15)
        c.dahua.access(granted=False, card=DAHUA_CARD, user=DAHUA_USER, name=DAHUA_NAME,
                       error=0x12)
        gateway = c.gateway
        await eventually(lambda: gateway.counters.get("events_accepted") >= 8,
                         what="every event journalled")
        await c.alert("temp_gate.fever", "gate-hk")
        await eventually(lambda: gateway.store_sink.cursor >= gateway.journal.last_seq,
                         what="the store written")
        await eventually(lambda: status_path(gateway.config.journal).exists(),
                         what="the status file")
        status = status_path(gateway.config.journal).read_bytes()
        # what the drivers dropped is counted, as much as was sent
        pictures = door.pictures_sent + gate.pictures_sent
        assert pictures == 4
        counted = {what: gateway.counters.get("privacy_dropped", what=what)
                   for what in ("picture", "name", "employee_no", "card")}
        assert counted == {"picture": pictures, "name": 2 + 2 + 2, "employee_no": 2 + 2 + 2,
                           "card": 2}  # the thermal terminal's cards: not even pseudonymised
        with contextlib.suppress(TimeoutError):
            while True:
                published.append(await everything_watcher.next(lambda s: True, timeout=0.5))
        site = c.site
        journal = gateway.config.journal.path
    series = await asyncio.to_thread(export, victoria.url, f'{{site="{site}"}}')
    assert series
    stored = json.dumps([(s.labels, s.values) for s in series]).encode()
    files = b"".join(p.read_bytes() for p in journal.parent.glob(f"{journal.name}*"))
    log_text = caplog.text.encode()
    events = [msgspec.json.decode(s.payload, type=DeviceEvent) for s in published
              if s.topic.endswith("/event")]
    assert {e.type for e in events} >= {"granted", "denied", "forced_open", "fever"}
    everything = {"mqtt": b"\n".join(s.payload + s.topic.encode() for s in published),
                  "store": stored, "journal": files, "status": status, "log": log_text}
    secrets = [RESIDENT.name, RESIDENT.employee_no, RESIDENT.card_no, DAHUA_CARD, DAHUA_USER,
               DAHUA_NAME]
    for where, data in everything.items():
        for secret in secrets:
            assert secret.encode() not in data, (where, secret)
        assert FACE_JPEG not in data, where
        assert FACE_JPEG[20:60] not in data, where  # not even its comment segment


async def test_a_silent_dahua_terminal_goes_offline_after_two_heartbeats(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with compound(tmp_path, mosquitto, victoria, monkeypatch, heartbeat_s=1) as c:
        status = f"sc/{c.site}/access/door-dh/status"
        await c.watcher.next(lambda s: s.topic == status and s.payload == b"online")
        c.dahua.silent = True  # the terminal stops sending heartbeats
        started = asyncio.get_running_loop().time()
        await c.watcher.next(lambda s: s.topic == status and s.payload == b"offline")
        # offline within two heartbeat intervals (and the supervisor's look) of the last part
        assert asyncio.get_running_loop().time() - started < 4.0
        # the stream, silent as long, is renewed about then too (whichever is seen first)
        await eventually(lambda: c.gateway.counters.get("dahua_reconnects", device="door-dh",
                                                        reason="heartbeat") >= 1,
                         what="the silent stream renewed")
        c.dahua.silent = False
        await c.watcher.next(lambda s: s.topic == status and s.payload == b"online")
