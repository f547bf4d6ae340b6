"""Every shipped JSON profile over real MQTT: typed records and the documented topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from drivers.profile import ProfileLibrary
from gateway.core.clock import ManualClock
from gateway.core.model import DeliveryClass, DeviceEvent, Reading
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.mqtt_device import MqttDeviceSimulator
from simulators.zigbee2mqtt import Zigbee2MqttDevice
from tests.helpers import Watcher, eventually, make_config, running, status_and_event, unique_site

LIBRARY = ProfileLibrary()

# profile -> (readings to send, event to send, expected event class)
CASES: dict[str, tuple[dict[str, float], str, DeliveryClass]] = {
    "zigbee-smoke": ({"battery_pct": 93}, "alarm", DeliveryClass.ALARM),
    "zigbee-sos-button": ({"battery_pct": 88, "linkquality": 96}, "press", DeliveryClass.ALARM),
    "nbiot-manhole": ({"tilt_deg": 35.2, "installed_tilt_deg": 1.2, "water_level_cm": 40,
                       "battery_pct": 81}, "open", DeliveryClass.ALARM),
    "heiman-hs1sa": ({"battery_pct": 96.5, "linkquality": 92}, "alarm", DeliveryClass.ALARM),
    "heiman-hs1eb": ({"battery_pct": 100, "linkquality": 87}, "press", DeliveryClass.ALARM),
    "tuya-ts0215a-sos": ({"battery_pct": 100, "linkquality": 18}, "press",
                         DeliveryClass.ALARM),
    "aqara-sjcgq11lm": ({"battery_pct": 100, "linkquality": 83}, "water_high",
                        DeliveryClass.EVENT),
}


def _device(profile: str, device: str, topic: str) -> dict[str, Any]:
    kind = LIBRARY.get(profile).kind.value
    return {"id": device, "kind": kind, "transport": "mqtt", "profile": profile,
            "location": {"building": "3"}, "mqtt": {"topic": topic}}


def test_every_json_profile_has_a_case() -> None:
    # HTTP and NB-IoT platform profiles: test_http_push, test_onenet_push, test_ctwing_push
    json_profiles = {n for n in LIBRARY.names() if LIBRARY.get(n).transport == "json"
                     and not n.startswith(("http-", "onenet-", "ctwing-"))}
    assert json_profiles == set(CASES)


@pytest.mark.parametrize("profile", sorted(CASES))
async def test_profile_over_mqtt(tmp_path: Path, mosquitto: Mosquitto, profile: str) -> None:
    readings, event_type, cls = CASES[profile]
    site = unique_site("prof")
    kind = LIBRARY.get(profile).kind
    topic = f"vendor/{site}/dev-1"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[_device(profile, "dev-1", topic)], shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/{kind}/dev-1/#", "watch"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        assert watcher.client is not None
        if LIBRARY.get(profile).availability_topic is None:
            device = MqttDeviceSimulator(watcher.client, topic, LIBRARY.get(profile))
        else:  # as zigbee2mqtt relays it, saying first that it reaches the device
            bridged = Zigbee2MqttDevice(watcher.client, topic, LIBRARY.get(profile))
            await bridged.available(True)
            device = bridged
        await device.report(readings, event_type)

        got: dict[str, bytes] = {}
        while len(got) < 3:  # event, telemetry and status, in whatever order they come
            seen = await watcher.next(lambda s: True)
            got[seen.topic.rsplit("/", 1)[1]] = seen.payload
        event = msgspec.json.decode(got["event"], type=DeviceEvent)
        assert (event.device, event.kind, event.type, event.cls) == ("dev-1", kind, event_type,
                                                                     cls)
        reading = msgspec.json.decode(got["telemetry"], type=Reading)
        assert {k: reading.values[k] for k in readings} == pytest.approx(readings)
        assert got["status"] == b"online"


async def test_state_reporting_device_fires_only_on_change(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("edge")
    topic = f"z2m/{site}/smoke-1"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[_device("zigbee-smoke", "smoke-1", topic)],
                         shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/smoke/smoke-1/event", "events"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        assert watcher.client is not None
        device = MqttDeviceSimulator(watcher.client, topic, LIBRARY.get("zigbee-smoke"))
        await device.report({"battery_pct": 90}, smoke=False, tamper=False, battery_low=False)
        for _ in range(3):  # the same state again: no new events
            await device.report({"battery_pct": 90}, smoke=False, tamper=False,
                                battery_low=False)
        await device.report({"battery_pct": 89}, smoke=True, tamper=False, battery_low=False)
        types = []
        while "alarm" not in types:
            seen = await watcher.next(lambda s: True)
            types.append(msgspec.json.decode(seen.payload, type=DeviceEvent).type)
        # the first report only sets the baseline: quiet flags raise no "cleared" events
        assert types == ["alarm"]


async def test_silent_device_goes_offline_with_an_event_and_comes_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("hb")
    topic = f"z2m/{site}/sos-1"
    clock = ManualClock()
    device_cfg = _device("zigbee-sos-button", "sos-1", topic) | {"heartbeat_s": 60}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[device_cfg], shutdown_timeout_s=0.5)
    async with running(Gateway(config, clock=clock)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/elder_button/sos-1/#", "watch"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        assert watcher.client is not None
        device = MqttDeviceSimulator(watcher.client, topic, LIBRARY.get("zigbee-sos-button"))
        await device.report({"battery_pct": 80})
        await watcher.next(lambda s: s.topic.endswith("/status") and s.payload == b"online")
        clock.advance(100)  # one missed heartbeat: still online
        await device.report({"battery_pct": 81})  # a heartbeat resets the timer
        # this report's own telemetry: the first report's may still be on its way
        await watcher.next(lambda s: s.topic.endswith("/telemetry") and msgspec.json.decode(
            s.payload, type=Reading).values.get("battery_pct") == 81)
        for _ in range(8):
            clock.advance(15)  # 120 s of silence: two intervals
        await status_and_event(watcher, "sos-1", "offline")
        await device.report({"battery_pct": 79})
        await status_and_event(watcher, "sos-1", "online")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as late:
            await late.subscribe(f"sc/{site}/elder_button/sos-1/status")
            async for message in late.messages:
                assert (message.payload, message.retain) == (b"online", True)
                break
