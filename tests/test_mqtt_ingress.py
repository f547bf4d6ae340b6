"""Third-party MQTT devices: mapping JSON to events and telemetry, rejecting bad payloads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from gateway.core.model import DeliveryClass, DeviceEvent
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import (
    Watcher,
    eventually,
    make_config,
    refuse_commits,
    running,
    sos_mqtt,
    unique_site,
)


@contextlib.asynccontextmanager
async def _sos_button(tmp_path: Path, mosquitto: Mosquitto, device: str, watched: str
                      ) -> AsyncIterator[tuple[Gateway, Watcher, str]]:
    """A connected gateway with one MQTT SOS button, a watcher on its `watched` output
    (`event`, `telemetry`, `#`) and the topic the button publishes on."""
    site = unique_site("ing")
    topic = f"vendor/{site}/{device}"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt(device, topic)], shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/elder_button/{device}/{watched}", "out"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        yield gateway, watcher, topic


async def test_malformed_json_is_counted_logged_once_and_the_gateway_keeps_running(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.mqtt_ingress")
    async with _sos_button(tmp_path, mosquitto, "sos-9", "event") as (
            gateway, watcher, topic):
        # the last: invalid UTF-8 inside a JSON string (found by fuzzing)
        for bad in (b"{not json", b"[1, 2]", b"\xff\xfe", b'{"action": "\xff\xff"}'):
            await watcher.publish(topic, bad)
        await watcher.publish(topic, b'{"action": "single", "battery": 87}')

        seen = await watcher.next(lambda s: True)
        event = msgspec.json.decode(seen.payload, type=DeviceEvent)
        assert (event.device, event.type, event.cls) == ("sos-9", "press", DeliveryClass.ALARM)
        assert event.fields == {"battery": 87}
        counts = gateway.counters
        assert counts.get("rejected", device="sos-9", reason="malformed_json") == 3
        assert counts.get("rejected", device="sos-9", reason="malformed_payload") == 1  # [1, 2]
        assert counts.get("ingress_messages", device="sos-9") == 1
        logged = [r.getMessage() for r in caplog.records if topic in r.getMessage()]
        assert len([m for m in logged if "malformed_json" in m]) == 1  # once, with its topic
        assert counts.get("handler_errors") == 0
        assert gateway.rules.active()[0].device == "sos-9"


async def test_unmapped_event_value_is_rejected_but_telemetry_is_kept(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with _sos_button(tmp_path, mosquitto, "sos-3", "telemetry") as (
            gateway, watcher, topic):
        await watcher.publish(topic, b'{"action": "triple", "battery": 50}')
        seen = await watcher.next(lambda s: True)
        assert msgspec.json.decode(seen.payload)["values"] == {"battery": 50}
        assert gateway.counters.get("rejected", device="sos-3", reason="unmapped_event") == 1
        assert gateway.rules.active() == []


async def test_deep_nesting_and_repeated_keys_are_malformed_json(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with _sos_button(tmp_path, mosquitto, "sos-4", "event") as (
            gateway, watcher, topic):
        await watcher.publish(topic, b'{"a": ' * 1_000 + b"1" + b"}" * 1_000)
        # which of the two the device meant is not for the gateway to guess: no SOS
        await watcher.publish(topic, b'{"action": "long", "action": "single"}')
        await watcher.publish(topic, b'{"action": "single", "battery": 87}')
        seen = await watcher.next(lambda s: True)
        assert msgspec.json.decode(seen.payload, type=DeviceEvent).fields == {"battery": 87}
        assert gateway.counters.get("rejected", device="sos-4", reason="malformed_json") == 2
        assert gateway.counters.get("handler_errors") == 0
        assert "Traceback" not in caplog.text
        assert len(gateway.rules.active()) == 1


async def test_a_reading_marks_its_device_seen_once_and_is_stored_and_published(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("ing")
    topic = f"vendor/{site}/gate-1"
    gate = {"id": "gate-1", "kind": "temp_gate", "transport": "mqtt",
            "mqtt": {"topic": topic, "readings": ["body_temp_c", "mask"]}}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, devices=[gate],
                         shutdown_timeout_s=0.5)
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/temp_gate/gate-1/telemetry", "telemetry"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        marked: list[str] = []
        board_seen = gateway.board.seen

        def seen(device: str, now: float) -> None:
            marked.append(device)
            board_seen(device, now)

        gateway.board.seen = seen  # type: ignore[method-assign]
        for n in range(5):
            await watcher.publish(topic, b'{"body_temp_c": 36.%d, "mask": true}' % n)
        await eventually(lambda: gateway.counters.get("ingress_messages", device="gate-1") == 5,
                         what="five messages taken in")
        assert marked == ["gate-1"] * 5  # once per message, not again per reading
        published = [msgspec.json.decode((await watcher.next(lambda s: True)).payload)
                     for _ in range(5)]
        assert [p["values"] for p in published] == [
            {"body_temp_c": 36.0 + n / 10, "mask": 1} for n in range(5)]
        assert len({p["id"] for p in published}) == 5


async def test_qos0_readings_and_a_qos0_press_are_handled(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A device that publishes at QoS 0 (many cheap sensors do): its readings reach the
    telemetry topic in order and its press is journalled and raises the alert."""
    async with _sos_button(tmp_path, mosquitto, "sos-0", "#") as (
            gateway, watcher, topic):
        for battery in range(40, 60):
            await watcher.publish(topic, b'{"battery": %d}' % battery, qos=0)
        await watcher.publish(topic, b'{"action": "single", "battery": 60}', qos=0)
        readings: list[int] = []
        events: list[DeviceEvent] = []
        while len(readings) < 21 or not events:
            seen = await watcher.next(lambda s: s.topic.endswith(("/telemetry", "/event")))
            if seen.topic.endswith("/event"):
                events.append(msgspec.json.decode(seen.payload, type=DeviceEvent))
            else:
                readings.append(msgspec.json.decode(seen.payload)["values"]["battery"])
        assert readings == list(range(40, 61))
        assert [(e.device, e.type, e.cls) for e in events] == [("sos-0", "press",
                                                                DeliveryClass.ALARM)]
        assert gateway.counters.get("ingress_messages", device="sos-0") == 21
        assert [a.device for a in gateway.rules.active()] == ["sos-0"]
        assert gateway.counters.get("redelivered", device="sos-0") == 0


async def test_a_qos0_press_the_journal_refused_is_handed_over_again(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QoS 0 message is never delivered again: a press in one that the journal refuses
    (an I/O error, injected twice: the real fault cannot be made on demand) is handed over
    again until it is journalled, and the device's later messages follow it."""
    refused = refuse_commits(monkeypatch, 2, lambda records: any(
        isinstance(r, DeviceEvent) and r.device == "sos-0" for r in records))
    async with _sos_button(tmp_path, mosquitto, "sos-0", "event") as (
            gateway, watcher, topic):
        await watcher.publish(topic, b'{"action": "single"}', qos=0)
        await watcher.publish(topic, b'{"action": "hold"}', qos=0)
        first = await watcher.next(lambda s: True)
        second = await watcher.next(lambda s: True)
        types = [msgspec.json.decode(m.payload, type=DeviceEvent).type for m in (first, second)]
        assert [[r.type for r in rs if isinstance(r, DeviceEvent)] for rs in refused] == [
            ["press"], ["press"]]
        assert types == ["press", "cancel"]  # the press after its refusals, then the next
        assert gateway.counters.get("journal_retries", device="sos-0") == 2
