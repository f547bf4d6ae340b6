"""The alarm lane: a backlog of readings the broker holds for the gateway never holds an
elder's SOS back, because the devices that call for help are read on a session of their own.

The gateway is stopped while a gate's readings pile up in the broker's queue of its session
(as after an outage, or while zigbee2mqtt republishes every device); an SOS is pressed
meanwhile. When the gateway starts, the broker hands each session its queue: the SOS comes
on the alarm lane's session at once, while the readings still drain on the other.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import msgspec

from gateway.core.model import Alert, AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site

QUEUED = 10_000  # readings the broker holds for the gateway's session
CHUNK = 500  # publishes in flight at once


async def _pile_up(port: int, topic: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pile-{unique_site()}",
                              max_inflight_messages=CHUNK) as client:
        for first in range(0, QUEUED, CHUNK):
            await asyncio.gather(*(
                client.publish(topic, json.dumps({"body_temp_c": 36.5, "n": n}), qos=1)
                for n in range(first, first + CHUNK)))


async def test_an_sos_is_not_held_back_by_the_readings_queued_before_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("lane")
    gate_topic, sos_topic = f"vendor/{site}/gate-1", f"vendor/{site}/sos-1"
    gate = {"id": "gate-1", "kind": "temp_gate", "transport": "mqtt",
            "mqtt": {"topic": gate_topic, "readings": ["body_temp_c"]}}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[gate, sos_mqtt("sos-1", sos_topic)], shutdown_timeout_s=0.5,
                         limits={"device_rate_hz": 0})  # a backlog here, not a flood
    async with running(Gateway(config)) as gateway:  # both sessions made, subscribed
        await eventually(lambda: gateway.link.connected and gateway.bulk_link is not None
                         and gateway.bulk_link.connected, what="both sessions connected")
    await _pile_up(mosquitto.port, gate_topic)
    alert_topic = f"sc/{site}/alerts/elder.sos/sos-1"
    async with Watcher(mosquitto.port, alert_topic, "duty-office") as office:
        await office.publish(sos_topic, b'{"action": "single"}')  # after every reading
        async with running(Gateway(config)) as gateway:
            backlog: list[float] = []

            async def sample() -> None:
                while True:
                    backlog.append(gateway.intake_backlog()["readings"]["messages"])
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            seen = await office.next(lambda s: msgspec.json.decode(
                s.payload, type=Alert).state is AlertState.FIRING, timeout=30)
            drained_then = gateway.counters.get("ingress_messages", device="gate-1")
            print(f"the alert came when {drained_then} of {QUEUED} readings were taken")
            await eventually(lambda: gateway.counters.get(
                "ingress_messages", device="gate-1") == QUEUED, timeout=60,
                what="the readings drained")
            # the backlog is seen, and seen to clear
            await eventually(lambda: gateway.intake_backlog()["readings"]["messages"] == 0,
                             what="the rules caught up")
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            assert max(backlog) > 0
            assert gateway.intake_backlog()["bulk"] == {"messages": 0, "bytes": 0,
                                                        "oldest_s": 0.0}
    assert msgspec.json.decode(seen.payload, type=Alert).device == "sos-1"
    # on one session it would have come after all of them
    assert drained_then < QUEUED, drained_then


async def test_a_session_that_read_every_device_before_the_split_reads_only_its_own(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The broker keeps a persistent session's subscriptions: a gateway that read the gates
    on its own session before is unsubscribed from them there, so nothing comes twice."""
    site = unique_site("split")
    gate_topic = f"vendor/{site}/gate-1"
    gate = {"id": "gate-1", "kind": "temp_gate", "transport": "mqtt",
            "mqtt": {"topic": gate_topic, "readings": ["body_temp_c"]}}
    devices = [gate, sos_mqtt("sos-1", f"vendor/{site}/sos-1")]
    broker = {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_min_s": 0.1}
    one = make_config(tmp_path, site=site, broker_port=mosquitto.port, devices=devices,
                      shutdown_timeout_s=0.5, broker={**broker, "alarm_lane_kinds": []})
    async with running(Gateway(one)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        assert gateway.bulk_link is None
    two = make_config(tmp_path, site=site, broker_port=mosquitto.port, devices=devices,
                      shutdown_timeout_s=0.5, broker=broker)
    async with running(Gateway(two)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/temp_gate/gate-1/telemetry", "telemetry") as watcher:
        await eventually(lambda: gateway.bulk_link is not None and gateway.bulk_link.connected,
                         what="both sessions connected")
        for n in range(3):
            await watcher.publish(gate_topic, json.dumps({"body_temp_c": 36 + n}).encode())
        for _ in range(3):
            await watcher.next(lambda seen: True)
        # a reading delivered on both sessions would be taken twice
        await asyncio.sleep(0.3)
        assert gateway.counters.get("ingress_messages", device="gate-1") == 3
        assert gateway.counters.get("mqtt_unrouted") == 0  # none came on the other session
        assert watcher.queue.empty()
