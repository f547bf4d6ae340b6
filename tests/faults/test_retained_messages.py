"""Retained messages are the broker's memory, not news: a retained press raises no second
alarm after a reconnect, and a retained ack never acknowledges an alert that fires later."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import msgspec

from gateway.core.model import AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.faults.oracle import Observer, accepted_alarms
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site


async def _retain(port: int, topic: str, payload: bytes) -> None:
    # QoS 0: nothing is queued for the gateway's offline session, the broker only keeps it
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"retainer-{unique_site()}") as c:
        await c.publish(topic, payload, qos=0, retain=True)


async def test_a_retained_press_raises_no_alarm(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("retained-press")
    topic = f"vendor/{site}/sos-1"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt("sos-1", topic)], shutdown_timeout_s=0.5)
    # the press of an earlier day, kept by the broker: every (re)subscription hands it out
    await _retain(mosquitto.port, topic, b'{"action": "single", "battery": 11}')
    async with Observer(mosquitto.port, site) as observer:
        async with running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.counters.get(
                "rejected", device="sos-1", reason="retained") == 1, what="retained counted")
            async with Watcher(mosquitto.port, "#", "device") as device:
                await device.publish(topic, b'{"action": "single", "battery": 87}')
            await eventually(lambda: len(observer.events) == 1, what="the live press")
            assert [a.state for a in gateway.rules.active()] == [AlertState.FIRING]
        accepted = await accepted_alarms(config.journal.path)
    # exactly one alarm, the live one: none duplicated with a new id, none lost
    assert [e.fields["battery"] for e in accepted] == [87]
    assert [e.id for e in observer.events] == [e.id for e in accepted]


async def test_a_retained_ack_does_not_stop_an_alert(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    site = unique_site("retained-ack")
    topic = f"vendor/{site}/sos-1"
    ack_topic = f"sc/{site}/alerts/elder.sos/sos-1/ack"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt("sos-1", topic)], shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/#", "office") as office:
        await eventually(lambda: gateway.connected, what="connected")
        await office.publish(topic, b'{"action": "single"}')
        await eventually(lambda: [a.state for a in gateway.rules.active()]
                         == [AlertState.FIRING], what="firing")
    # while the gateway is away, someone leaves an ack on the broker
    await _retain(mosquitto.port, ack_topic, b'{"by": "mallory (retained)"}')
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/+/+", "office") as office:
        await eventually(lambda: gateway.counters.get(
            "ack_rejected", rule="elder.sos", reason="retained") == 1, what="retained ack")
        await eventually(lambda: gateway.runner.idle, what="rules idle")
        (alert,) = gateway.rules.active()
        assert (alert.state, alert.by) == (AlertState.FIRING, None)  # it still escalates
        await office.publish(ack_topic, b'{"by": "duty office"}')
        acked = await office.next(
            lambda s: msgspec.json.decode(s.payload)["state"] == "acknowledged")
        assert msgspec.json.decode(acked.payload)["by"] == "duty office"
