"""Acknowledgements on MQTT: only one for a firing alert is journalled; everything else is
refused, counted under a configured rule's id or `unknown`, and logged once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.acks import MAX_BY
from gateway.core.model import AckCommand, AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site


async def _acks_journalled(gateway: Gateway) -> list[AckCommand]:
    batch = await gateway.journal.read_after(0, 10_000)
    return [e.record for e in batch.entries if isinstance(e.record, AckCommand)]


async def test_acks_on_made_up_topics_grow_no_state(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    site = unique_site("acks")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt("sos-1", f"vendor/{site}/sos-1")],
                         shutdown_timeout_s=0.5)
    caplog.set_level(logging.WARNING, logger="gateway.acks")
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, "nothing/#", "console") as console:
        await eventually(lambda: gateway.connected, what="connected")
        labels_before = len(gateway.counters.items())
        for n in range(300):
            await console.publish(f"sc/{site}/alerts/rule-{n}/dev-{n}/ack", b'{"by": "x"}')
            await console.publish(f"sc/{site}/alerts/elder.sos/dev-{n}/ack", b'{"by": "x"}')
        await eventually(lambda: gateway.counters.get("ack_rejected") == 600, what="refused")
        counts = gateway.counters
        assert counts.get("ack_rejected", rule="unknown", reason="unknown_rule") == 300
        assert counts.get("ack_rejected", rule="elder.sos", reason="not_firing") == 300
        assert len(counts.items()) <= labels_before + 2
        assert len([r for r in caplog.records if r.name == "gateway.acks"]) == 2  # once each
        assert await _acks_journalled(gateway) == []


async def test_only_a_well_formed_ack_acknowledges(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("acks")
    topic = f"vendor/{site}/sos-1"
    ack = f"sc/{site}/alerts/elder.sos/sos-1/ack"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt("sos-1", topic)], shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, "nothing/#", "console") as console:
        await eventually(lambda: gateway.connected, what="connected")
        await console.publish(topic, b'{"action": "single"}')
        await eventually(lambda: len(gateway.rules.active()) == 1, what="firing")
        too_long = ('{"by": "' + "m" * (MAX_BY + 1) + '"}').encode()
        for bad in (too_long, b'{"by": ""}', b'{"by": "a", "by": "b"}',
                    b'{"by": ' * 2000 + b"1" + b"}" * 2000, b"x" * 70_000):
            await console.publish(ack, bad)
        await eventually(lambda: gateway.counters.get("ack_rejected") == 5, what="refused")
        assert gateway.counters.get("ack_rejected", rule="elder.sos", reason="malformed") == 4
        assert gateway.counters.get("ack_rejected", reason="payload_too_large") == 1
        assert gateway.rules.active()[0].state is AlertState.FIRING
        await console.publish(ack, ('{"by": "' + "d" * MAX_BY + '"}').encode())
        await eventually(lambda: gateway.rules.active()[0].state is AlertState.ACKNOWLEDGED,
                         what="acknowledged")
        assert [a.by for a in await _acks_journalled(gateway)] == ["d" * MAX_BY]
        assert gateway.counters.get("handler_errors") == 0
