"""Every Modbus, serial and HTTP profile through the whole gateway to real Mosquitto.

Each case drives its simulator over the real transport (pty, TCP, HTTP) and asserts the
typed event and reading on the documented topics. The access controllers also carry a
card number and the holder's name: only a pseudonym may leave the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from drivers.profile import ProfileLibrary
from drivers.serial_frames.driver import SerialFrameDriver
from gateway.core.model import DeviceEvent, Reading
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.ops.store_query import export
from gateway.supervisor import Gateway
from simulators.http_pusher import HttpPusher
from simulators.modbus_device import SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator
from simulators.serial_device import SerialDeviceSimulator
from tests.helpers import Watcher, eventually, make_config, running, unique_site

LIBRARY = ProfileLibrary()
CARD = "0012345678"
HOLDER = "Wang Xiuying"
TOKEN = "t0ken-for-the-gate-0123456789"
KEY_ENV = "SCGW_TEST_PSEUDONYM_KEY"

Act = Callable[[Gateway], Awaitable[None]]


@dataclass
class Rig:
    device: dict[str, Any]  # the device's config entry, without id/kind/profile
    act: Act  # makes the device report the expected event and reading
    extra: dict[str, Any]  # top-level config additions (buses, http)


@dataclass(frozen=True)
class Case:
    event: str
    reading: str
    value: float
    rig: Callable[[Path, Any], contextlib.AbstractAsyncContextManager[Rig]]


def _modbus(kind: str, act: Callable[[SimulatedDevice], None]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def rig(_: Path, profile: Any) -> AsyncIterator[Rig]:
        device = SimulatedDevice(3, profile)
        simulator = RtuBusSimulator([device]) if kind == "rtu" else TcpBusSimulator([device])
        async with simulator:
            bus: dict[str, Any] = {"id": "bus-1", "type": kind, "timeout_s": 0.3}
            if kind == "rtu":
                bus["port"] = simulator.port
            else:
                bus |= {"host": "127.0.0.1", "tcp_port": simulator.port}

            async def go(_: Gateway) -> None:
                act(device)

            yield Rig({"transport": "modbus",
                       "modbus": {"bus": "bus-1", "unit": 3, "poll_s": 0.2,
                                  "alarm_poll_s": 0.1}}, go, {"buses": [bus]})
    return rig


def _serial(*frames: tuple[str, dict[str, Any]]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def rig(tmp: Path, profile: Any) -> AsyncIterator[Rig]:
        link = tmp / "ttyDEVICE"
        async with SerialDeviceSimulator(profile, link) as simulator:
            async def go(gateway: Gateway) -> None:
                (driver,) = [d for d in gateway.drivers if isinstance(d, SerialFrameDriver)]
                await asyncio.wait_for(driver.connected.wait(), 10)  # the port is open
                for frame, values in frames:
                    await simulator.send(frame, values)

            yield Rig({"transport": "serial", "serial": {"port": str(link)}}, go, {})
    return rig


def _http(values: dict[str, Any]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def rig(_: Path, profile: Any) -> AsyncIterator[Rig]:
        port = free_port()
        async with HttpPusher(profile, f"http://127.0.0.1:{port}", "dev-1", TOKEN) as pusher:
            async def go(_: Gateway) -> None:
                async def accepted() -> bool:
                    try:
                        return (await pusher.push(values)).status in (200, 202)
                    except OSError:  # the receiver is not listening yet
                        return False

                await eventually(accepted, what="push accepted")

            yield Rig({"transport": "http", "http": {"token": TOKEN}}, go,
                      {"http": {"host": "127.0.0.1", "port": port}})
    return rig


def _smoke_alarm(d: SimulatedDevice) -> None:
    d.set_reading("battery_pct", 80)
    d.raise_alarm("alarm")


def _manhole_open(d: SimulatedDevice) -> None:
    d.set_reading("tilt_deg", 35.0)
    d.raise_alarm("open")


def _door_forced_open(d: SimulatedDevice) -> None:
    d.raise_alarm("door_contact")
    d.raise_alarm("forced_open")


def _fever(d: SimulatedDevice) -> None:
    d.set_reading("body_temp_c", 37.8)
    d.raise_alarm("abnormal")


CASES: dict[str, Case] = {
    "modbus-smoke-detector": Case("alarm", "battery_pct", 80, _modbus("rtu", _smoke_alarm)),
    "modbus-manhole-monitor": Case("open", "tilt_deg", 35.0, _modbus("tcp", _manhole_open)),
    "modbus-door-io": Case("forced_open", "door_open", 1, _modbus("rtu", _door_forced_open)),
    "modbus-temp-gate": Case("fever", "body_temp_c", 37.8, _modbus("tcp", _fever)),
    "serial-access-controller": Case("granted", "door_open", 1, _serial(
        ("door_event", {"reason": 1, "door": 1, "card": int(CARD), "holder_name": HOLDER}),
        ("door_contact", {"door": 1, "open": 1}))),
    "serial-temp-gate": Case("fever", "body_temp_c", 37.8, _serial(
        ("passage", {"temperature": 37.8, "abnormal": 1, "mask": 1, "passages": 12,
                     "person_name": HOLDER}))),
    "http-access-controller": Case("granted", "door_open", 1, _http(
        {"event.code": 0, "event.door": 1, "event.card": CARD, "door_open": 1,
         "holder.name": HOLDER, "holder.photo": "/9j/4AAQSkZJRgABAQ"})),
    "http-temp-gate": Case("fever", "body_temp_c", 37.8, _http(
        {"temp_x10": 37.8, "abnormal": 1, "mask": 1, "passages": 7,
         "person.name": HOLDER, "person.id": "110105194912310021"})),
}


def test_every_shipped_profile_has_an_end_to_end_case() -> None:
    over_mqtt = {"zigbee-smoke", "zigbee-sos-button", "nbiot-manhole",  # test_mqtt_profiles
                 "heiman-hs1sa", "heiman-hs1eb", "tuya-ts0215a-sos", "aqara-sjcgq11lm"}
    # test_onenet_push, test_ctwing_push and test_platforms_end_to_end
    over_platforms = {"onenet-smoke", "onenet-manhole", "ctwing-smoke", "ctwing-manhole",
                      "ctwing-manhole-lwm2m"}
    assert set(LIBRARY.names()) - over_mqtt - over_platforms == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_profile_end_to_end(tmp_path: Path, mosquitto: Mosquitto,
                                  victoria: VictoriaMetrics, name: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    profile = LIBRARY.get(name)
    kind = profile.kind.value
    site = unique_site("e2e-prof")
    monkeypatch.setenv(KEY_ENV, "compound-secret-key-0123456789")
    async with case.rig(tmp_path, profile) as rig:
        device = {"id": "dev-1", "kind": kind, "profile": name, "location": {"building": "2"},
                  **rig.device}
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                             store_url=victoria.url, devices=[device],
                             pseudonym_key_env=KEY_ENV, **rig.extra)
        async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/#", "watch"
        ) as watcher:
            await eventually(lambda: gateway.connected, what="connected")
            await rig.act(gateway)
            published: list[bytes] = []
            event: DeviceEvent | None = None
            reading: Reading | None = None
            while event is None or reading is None:  # in whatever order they come
                seen = await watcher.next(lambda s: True)
                published.append(seen.payload)
                if seen.topic == f"sc/{site}/{kind}/dev-1/event":
                    candidate = msgspec.json.decode(seen.payload, type=DeviceEvent)
                    event = candidate if candidate.type == case.event else event
                elif seen.topic == f"sc/{site}/{kind}/dev-1/telemetry":
                    values = msgspec.json.decode(seen.payload, type=Reading)
                    reading = values if case.reading in values.values else reading
            assert reading.values[case.reading] == pytest.approx(case.value)
            await eventually(lambda: gateway.store_sink.cursor >= gateway.journal.last_seq,
                             what="store written")
            while not watcher.queue.empty():
                published.append(watcher.queue.get_nowait().payload)
    # privacy: no card number, name, face or identity number leaves the compound's driver
    for payload in published:
        for secret in (CARD, CARD.lstrip("0"), HOLDER, "4AAQSkZJRgABAQ", "110105194912310021"):
            assert secret.encode() not in payload, (name, payload)
    if "access" in name:
        assert str(event.fields["card"]).startswith("p:")
    series: list[Any] = []

    async def stored() -> bool:
        series[:] = await asyncio.to_thread(export, victoria.url, f'{{site="{site}"}}')
        return bool(series)

    await eventually(stored, what="points in the store")
    for s in series:
        assert CARD.lstrip("0") not in str(s.labels)
        assert HOLDER not in str(s.labels)
