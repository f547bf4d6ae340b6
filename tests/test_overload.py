"""Overload: a device far beyond its rate is throttled, its alarm still passes; when the
rules fall behind, coalescible readings keep one a second per device."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.throttle import Throttle
from gateway.core.model import DeviceKind, Reading
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, make_config, running, unique_site

T0 = 1_700_000_000_000


def test_a_throttle_lets_the_rate_and_its_burst_through() -> None:
    throttle = Throttle(rate_hz=10, burst_s=2, now=0.0)
    assert sum(throttle.allow(0.0) for _ in range(50)) == 20  # the burst
    assert not throttle.allow(0.05)
    assert throttle.allow(0.1)  # one more every 0.1 s
    assert sum(throttle.allow(t / 100) for t in range(20, 120)) == 10


async def test_a_flooding_device_is_throttled_and_its_alarm_still_alerts(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("flood")
    smoke = {"id": "smoke-1", "kind": "smoke", "transport": "mqtt",
             "mqtt": {"topic": f"vendor/{site}/smoke-1", "event_key": "alarm",
                      "events": {"true": "alarm", "false": "alarm_cleared"},
                      "readings": ["temperature_c"]}}
    quiet = {"id": "smoke-2", "kind": "smoke", "transport": "mqtt",
             "mqtt": {"topic": f"vendor/{site}/smoke-2", "readings": ["temperature_c"]}}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[smoke, quiet], shutdown_timeout_s=0.5,
                         limits={"device_rate_hz": 10, "device_burst_s": 1})
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/#", "office") as office:
        await eventually(lambda: gateway.connected, what="connected")
        reading = json.dumps({"temperature_c": 21.0}).encode()
        for n in range(400):
            await office.publish(f"vendor/{site}/smoke-1", reading, qos=0)
            if n == 200:  # in the middle of the flood
                await office.publish(f"vendor/{site}/smoke-1",
                                     json.dumps({"alarm": True}).encode())
            if n % 40 == 0:
                await office.publish(f"vendor/{site}/smoke-2", reading, qos=0)
        await office.next(lambda s: s.topic.endswith("/smoke.alarm/smoke-1"))
        counters = gateway.counters
        await eventually(lambda: counters.get("ingress_messages", device="smoke-2") == 10,
                         what="the quiet device's readings")
        await eventually(lambda: counters.get("ingress_messages", device="smoke-1")
                         + counters.get("throttled", device="smoke-1") == 401,
                         what="the flood taken")
        assert counters.get("throttled", device="smoke-1") > 300  # of 400 in well under 30 s
        assert counters.get("throttled", device="smoke-2") == 0
        assert counters.get("shed_readings", kind="smoke", reason="device_rate") == (
            counters.get("throttled", device="smoke-1"))


def test_under_overload_coalescible_readings_keep_one_a_second(tmp_path: Path) -> None:
    gates = [{"id": "gate-1", "kind": "temp_gate", "transport": "mqtt",
              "mqtt": {"topic": "v/gate-1", "readings": ["body_temp_c"]}}]
    smokes = [{"id": f"smoke-{n}", "kind": "smoke", "transport": "mqtt",
               "mqtt": {"topic": f"v/smoke-{n}", "readings": ["temperature_c"]}}
              for n in (1, 2)]
    config = make_config(tmp_path, site=unique_site("shed"), devices=[*gates, *smokes],
                         journal={"path": str(tmp_path / "j.db"), "telemetry_capacity": 100},
                         limits={"shed_above": 0.5})
    gateway = Gateway(config)
    smoke = [Reading(id=f"s{n}", ts=T0 + n * 100, kind=DeviceKind.SMOKE, device="smoke-1",
                     values={"temperature_c": 21.0}) for n in range(60)]
    for r in smoke[:50]:  # the rules take nothing meanwhile: half the buffer waits
        gateway.reading(r)
    assert gateway.counters.get("shed_readings") == 0
    for r in smoke[50:]:  # 1 s of a reading every 100 ms: one kept
        gateway.reading(r)
    assert gateway.counters.get("shed_readings", kind="smoke", reason="overload") == 9
    gateway.reading(Reading(id="o", ts=T0 + 5_900, kind=DeviceKind.SMOKE, device="smoke-2",
                            values={"temperature_c": 21.0}))  # another device: its own
    for n in range(20):  # each a person passing: never shed
        gateway.reading(Reading(id=f"g{n}", ts=T0 + 6_000 + n, kind=DeviceKind.TEMP_GATE,
                                device="gate-1", values={"body_temp_c": 36.5}))
    assert gateway.counters.get("shed_readings") == 9
    assert len(gateway.telemetry) == 50 + 1 + 1 + 20


def test_a_flooding_devices_readings_are_told_from_its_events_without_parsing() -> None:
    from drivers.mqtt_ingress import _event_keys, _readings_alone, inline_mapping
    from gateway.core.config import MqttDevice

    smoke = MqttDevice.model_validate(
        {"id": "smoke-1", "kind": "smoke", "transport": "mqtt",
         "mqtt": {"topic": "t/smoke-1", "event_key": "alarm",
                  "events": {"true": "alarm", "false": "alarm_cleared"},
                  "readings": ["temperature_c"]}})
    keys = _event_keys(inline_mapping(smoke))
    assert keys == (b'"alarm"',)
    assert _readings_alone(b'{"temperature_c": 21.0}', keys)
    assert not _readings_alone(b'{"temperature_c": 21.0, "alarm": true}', keys)
    assert not _readings_alone(b'{"\\u0061larm": true}', keys)  # parsed: it may be one
