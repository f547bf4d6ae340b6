"""A retained alert the broker refuses (PUBACK 0x87, not authorised by its ACL) goes again,
in its newest state, until the broker takes it; a real Mosquitto refuses and, told to
reload its ACL (SIGHUP), takes it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import msgspec

from gateway.core.model import Alert, AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import Seen, Watcher, eventually, make_config, running, sos_mqtt, unique_site


class _AclBroker(Mosquitto):
    """Anonymous clients may do anything; the gateway's user what `acl` says."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.acl_file = workdir / "acl"

    def deny(self, topic_filter: str | None) -> None:
        deny = "" if topic_filter is None else f"topic deny {topic_filter}\n"
        self.acl_file.parent.mkdir(parents=True, exist_ok=True)
        self.acl_file.write_text(f"topic readwrite #\nuser gw\ntopic readwrite #\n{deny}")

    def command(self) -> list[str]:
        command = super().command()
        with (self.workdir / "mosquitto.conf").open("a") as conf:
            conf.write(f"acl_file {self.acl_file}\n")
        return command


def _gateway(tmp_path: Path, site: str, port: int) -> Gateway:
    """An MQTT SOS button's gateway, logged in to the broker as `gw`."""
    return Gateway(make_config(
        tmp_path, site=site, devices=[sos_mqtt("sos-1", f"z2m/{site}/sos-1")],
        broker={"host": "127.0.0.1", "port": port, "username": "gw", "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5, "publish_timeout_s": 5}, shutdown_timeout_s=0.5))


async def test_a_refused_alert_goes_again_until_the_broker_takes_it(tmp_path: Path) -> None:
    site = unique_site("refused")
    broker = _AclBroker(tmp_path / "broker")
    broker.deny(f"sc/{site}/alerts/#")
    broker.start()
    alert_topic = f"sc/{site}/alerts/elder.sos/sos-1"
    try:
        async with running(_gateway(tmp_path, site, broker.port)) as gw, \
                Watcher(broker.port, f"sc/{site}/#", "office") as office:
            await eventually(lambda: gw.connected, what="connected")
            await office.publish(f"z2m/{site}/sos-1", b'{"action": "single"}')
            await eventually(lambda: gw.counters.get("mqtt_refused_taken") == 0
                             and gw.counters.get("mqtt_publish_refused",
                                                 reason="not authorized (135)") >= 2,
                             what="the alert refused, and refused again a second later")
            await office.next(lambda s: s.topic == f"sc/{site}/elder_button/sos-1/event")
            assert all(s.topic != alert_topic for s in _drain(office))

            broker.deny(None)
            os.kill(broker.pid, signal.SIGHUP)  # Mosquitto reads its ACL file again
            seen = await office.next(lambda s: s.topic == alert_topic, timeout=15)
            alert = msgspec.json.decode(seen.payload, type=Alert)
            assert (alert.rule, alert.device, alert.state) == ("elder.sos", "sos-1",
                                                                AlertState.FIRING)
            # counted once the broker's PUBACK came, which may follow the delivery
            await eventually(lambda: gw.counters.get("mqtt_refused_taken") == 1,
                             what="the alert counted as taken")
        # retained: a subscriber that comes later has it too
        async with Watcher(broker.port, alert_topic, "late") as late:
            retained = await late.next(lambda s: s.topic == alert_topic)
            assert retained.retain
            assert msgspec.json.decode(retained.payload, type=Alert).id == alert.id
    finally:
        broker.stop()


def _drain(watcher: Watcher) -> list[Seen]:
    seen: list[Seen] = []
    while not watcher.queue.empty():
        seen.append(watcher.queue.get_nowait())
    return seen


async def test_a_refused_device_status_goes_again_until_the_broker_takes_it(
        tmp_path: Path) -> None:
    site = unique_site("refusedst")
    status_topic = f"sc/{site}/elder_button/sos-1/status"
    broker = _AclBroker(tmp_path / "broker")
    broker.deny(status_topic)
    broker.start()
    try:
        async with running(_gateway(tmp_path, site, broker.port)) as gw, \
                Watcher(broker.port, f"sc/{site}/#", "office") as office:
            await eventually(lambda: gw.connected, what="connected")
            await office.publish(f"z2m/{site}/sos-1", b'{"action": "single"}')  # online
            await eventually(lambda: gw.counters.get("mqtt_publish_refused",
                                                     reason="not authorized (135)") >= 2,
                             what="the status refused, and refused again a second later")
            assert all(s.topic != status_topic for s in _drain(office))

            broker.deny(None)
            os.kill(broker.pid, signal.SIGHUP)
            seen = await office.next(lambda s: s.topic == status_topic, timeout=15)
            assert seen.payload == b"online"
            await eventually(lambda: gw.counters.get("mqtt_refused_taken") == 1,
                             what="the status counted as taken")
    finally:
        broker.stop()
