"""What zigbee2mqtt says about itself: its state and its paired devices' models."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from drivers.zigbee2mqtt import BridgedDevice, Zigbee2MqttBridges, bridge_base
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent, Reading


class _Intake:
    def __init__(self) -> None:
        self.unreachable_devices: list[str] = []

    def unreachable(self, device: str) -> None:
        self.unreachable_devices.append(device)

    def seen(self, device: str) -> None:
        raise AssertionError("a bridge message is no device's sign of life")

    def reading(self, reading: Reading) -> None:
        raise AssertionError

    async def event(self, event: DeviceEvent) -> None:
        raise AssertionError

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        raise AssertionError


DEVICES = [BridgedDevice("sos-1", "zigbee2mqtt/b7/sos-1", ("HS1EB/HS1EB-E",), "heiman-hs1eb"),
           BridgedDevice("smoke-1", "zigbee2mqtt/smoke-1", ("HS1SA", "HS3SA/HS1SA"),
                         "heiman-hs1sa"),
           BridgedDevice("leak-1", "other/leak-1", (), None)]


def _bridges() -> tuple[Zigbee2MqttBridges, _Intake, Counters]:
    intake, counters = _Intake(), Counters()
    return Zigbee2MqttBridges(DEVICES, intake, counters, 262_144), intake, counters


def _message(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, 1, True, 0)


# zigbee2mqtt.io, guide/usage/mqtt_topics_and_messages ("zigbee2mqtt/bridge/devices"): the
# documented example's shape, with its unsupported device and the coordinator as given there
# and the configured devices' entries in the same form
def _entry(friendly: str, model: str | None) -> dict[str, Any]:
    return {"ieee_address": "0x00158d00018255df", "type": "EndDevice",
            "network_address": 29159, "supported": model is not None,
            "friendly_name": friendly,
            "definition": None if model is None else {
                "model": model, "vendor": "Heiman", "description": "...", "options": [],
                "exposes": []},
            "power_source": "Battery", "model_id": "SOS-EM", "interviewing": False,
            "interview_completed": True}


COORDINATOR = {"ieee_address": "0x00124b00120144ae", "type": "Coordinator",
               "network_address": 0, "supported": False,
               "endpoints": {"1": {"bindings": [], "configured_reportings": [],
                                   "clusters": {"input": [], "output": []}}},
               "friendly_name": "Coordinator", "definition": None, "power_source": None,
               "date_code": None, "scenes": [], "model_id": None, "interviewing": False,
               "interview_completed": True}


def test_the_bridges_of_the_configured_devices() -> None:
    bridges, _, _ = _bridges()
    assert sorted(bridges.topics) == [
        "other/bridge/devices", "other/bridge/state",
        "zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/state"]
    assert bridge_base("zigbee2mqtt/b7/sos-1") == "zigbee2mqtt"
    assert bridge_base("sos-1") is None


@pytest.mark.parametrize("offline", [b"offline", b'{"state":"offline"}'])
def test_a_stopped_bridge_makes_its_devices_offline(offline: bytes) -> None:
    bridges, intake, counters = _bridges()
    bridges.handle(_message("zigbee2mqtt/bridge/state", b"online"))
    assert intake.unreachable_devices == []
    bridges.handle(_message("zigbee2mqtt/bridge/state", offline))
    assert intake.unreachable_devices == ["sos-1", "smoke-1"]  # not the other bridge's
    assert bridges.bridge_offline("sos-1")
    assert not bridges.bridge_offline("leak-1")
    bridges.handle(_message("zigbee2mqtt/bridge/state", b'{"state": "online"}'))
    assert not bridges.bridge_offline("sos-1")
    assert counters.get("zigbee2mqtt_state", bridge="zigbee2mqtt", state="offline") == 1


def test_a_device_of_another_model_or_unpaired_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    bridges, _, counters = _bridges()
    caplog.set_level(logging.WARNING, logger="drivers.zigbee2mqtt")
    listed = [_entry("b7/sos-1", "TS0215A_sos"), COORDINATOR]
    for _ in range(2):
        bridges.handle(_message("zigbee2mqtt/bridge/devices", json.dumps(listed).encode()))
    assert counters.get("zigbee2mqtt_model_mismatch", device="sos-1") == 2
    assert counters.get("zigbee2mqtt_unpaired", device="smoke-1") == 2
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [  # once each
        "device sos-1: zigbee2mqtt says it is a 'TS0215A_sos', but its profile heiman-hs1eb "
        "covers HS1EB/HS1EB-E: its messages may be refused or mean something else; give it "
        "the profile of its model",
        "device smoke-1: zigbee2mqtt on zigbee2mqtt has no device named 'smoke-1'; pair it "
        "and give it that friendly name"]

    matching = [_entry("b7/sos-1", "HS1EB/HS1EB-E"), _entry("smoke-1", None), COORDINATOR]
    bridges.handle(_message("zigbee2mqtt/bridge/devices", json.dumps(matching).encode()))
    assert counters.get("zigbee2mqtt_model_mismatch", device="sos-1") == 2  # right now
    assert counters.get("zigbee2mqtt_model_mismatch", device="smoke-1") == 1  # unsupported


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("zigbee2mqtt/bridge/state", b"asleep", "bad_bridge_state"),
    ("zigbee2mqtt/bridge/devices", b"[{", "malformed_json"),
    ("zigbee2mqtt/bridge/devices", b'{"devices": []}', "malformed_payload"),
])
def test_what_the_bridge_says_wrongly_is_counted(topic: str, payload: bytes,
                                                 reason: str) -> None:
    bridges, intake, counters = _bridges()
    bridges.handle(_message(topic, payload))
    assert counters.get("zigbee2mqtt_rejected", bridge="zigbee2mqtt", reason=reason) == 1
    assert intake.unreachable_devices == []
