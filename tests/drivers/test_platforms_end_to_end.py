"""NB-IoT devices through OneNET and CTWing, through the whole gateway, to real Mosquitto
and VictoriaMetrics: the platforms' simulators push with real signatures and retries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from drivers.profile import ProfileLibrary
from gateway.core.model import DeviceEvent, Reading
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.ops.store_query import export
from gateway.supervisor import Gateway
from simulators.ctwing_platform import CtwingPlatform
from simulators.onenet_platform import OneNetPlatform
from simulators.serial_device import SerialDeviceSimulator
from tests.helpers import Watcher, eventually, intake_open, make_config, running, unique_site

ONENET_TOKEN = "onenet-instance-token"
AES_KEY = "Zq3xK9mW2pL7vN4b"
CTWING_TOKEN = "ctwing-subscription-secret-0123"
PRODUCT = "0AbCdEf"
COVER_ID = "9f00e6d1c5b94e0d8a1c1f1f0a9e2b11"


def _devices() -> list[dict[str, Any]]:
    return [
        {"id": "smoke-b3-0401", "kind": "smoke", "transport": "onenet",
         "profile": "onenet-smoke", "location": {"building": "3", "floor": 4},
         "onenet": {"product_id": PRODUCT, "device_name": "smoke-0001"}},
        {"id": "cover-east-2", "kind": "manhole", "transport": "ctwing",
         "profile": "ctwing-manhole", "location": {"building": "east gate"},
         "ctwing": {"device_id": COVER_ID}},
    ]


async def test_platform_pushes_become_events_alerts_status_and_points(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    site = unique_site("e2e-nbiot")
    port = free_port()
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         store_url=victoria.url, devices=_devices(),
                         http={"host": "127.0.0.1", "port": port},
                         onenet={"token": ONENET_TOKEN, "aes_key": AES_KEY},
                         ctwing={"token": CTWING_TOKEN})
    base = f"http://127.0.0.1:{port}"
    cover = SerialDeviceSimulator(ProfileLibrary().get("ctwing-manhole"), tmp_path / "unused")
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/#", "watch"
    ) as watcher, OneNetPlatform(f"{base}/onenet", ONENET_TOKEN, AES_KEY,
                                 retry_scale=0) as onenet, CtwingPlatform(
        f"{base}/ctwing/{CTWING_TOKEN}", retry_s=0
    ) as ctwing:
        await intake_open(gateway)
        assert (await onenet.verify())[0] == 200
        # a forged push: refused and counted, nothing published
        forged = onenet.envelope(onenet.property_notify(PRODUCT, "smoke-0001",
                                                        {"smoke_state": 1}), token="guess")
        assert await onenet.send(forged) == 403
        assert gateway.counters.get("rejected", device="onenet", reason="bad_signature") == 1

        alarm = await onenet.push(onenet.property_notify(
            PRODUCT, "smoke-0001", {"smoke_state": 1, "battery_percentage": 88, "rsrp": -95}))
        assert alarm.statuses == [200]
        seen = await _each(watcher, f"sc/{site}/smoke/smoke-b3-0401/event",
                           f"sc/{site}/alerts/smoke.alarm/smoke-b3-0401",
                           f"sc/{site}/smoke/smoke-b3-0401/telemetry")
        event, alert, telemetry = seen
        assert msgspec.json.decode(event, type=DeviceEvent).type == "alarm"
        assert b'"firing"' in alert
        assert msgspec.json.decode(telemetry, type=Reading).values == {
            "smoke": 1, "battery_pct": 88, "signal_dbm": -95}

        # the platform says the sensor left the network: offline now, not in two days
        assert (await onenet.push(onenet.life_cycle(PRODUCT, "smoke-0001", online=False))
                ).statuses == [200]
        await watcher.next(lambda s: s.topic == f"sc/{site}/smoke/smoke-b3-0401/status"
                           and s.payload == b"offline")
        await watcher.next(lambda s: s.topic == f"sc/{site}/alerts/device.offline/smoke-b3-0401")

        # a pass-through manhole cover over CTWing, pushed twice with the same upPacketSN
        data = cover.frame("alarm", {"code": 1, "tilt": 41.0, "open": 1, "water": 12,
                                     "battery": 64, "rsrp": -99})
        report = ctwing.app_data_report(COVER_ID, data, packet=301)
        assert (await ctwing.push(report)).statuses == [200]
        assert (await ctwing.push(report)).statuses == [200]
        opened, _ = await _each(watcher, f"sc/{site}/manhole/cover-east-2/event",
                                f"sc/{site}/alerts/manhole.open/cover-east-2")
        assert msgspec.json.decode(opened, type=DeviceEvent).type == "open"
        assert gateway.counters.get("redelivered", device="cover-east-2") == 1
        await eventually(lambda: gateway.store_sink.cursor >= gateway.journal.last_seq,
                         what="store written")
        opens = [s async for s in _drain(watcher)
                 if s.topic == f"sc/{site}/manhole/cover-east-2/event"]
        assert opens == []  # the repeat was not published again

    series: list[Any] = []

    async def stored() -> bool:
        series[:] = await asyncio.to_thread(export, victoria.url,
                                            f'{{site="{site}",device="smoke-b3-0401"}}')
        return any("signal_dbm" in s.labels.get("__name__", "") and -95.0 in s.values
                   for s in series)

    await eventually(stored, what="the smoke sensor's signal in the store")


async def _each(watcher: Watcher, *topics: str) -> list[bytes]:
    """The payload first published on each topic, in whatever order they come."""
    got: dict[str, bytes] = {}
    while len(got) < len(topics):
        seen = await watcher.next(lambda s: s.topic in topics and s.topic not in got)
        got[seen.topic] = seen.payload
    return [got[t] for t in topics]


async def _drain(watcher: Watcher) -> Any:
    while not watcher.queue.empty():
        yield watcher.queue.get_nowait()
