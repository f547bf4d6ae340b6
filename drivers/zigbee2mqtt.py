"""What zigbee2mqtt says about itself: `<base>/bridge/state` and `<base>/bridge/devices`.

A device behind zigbee2mqtt (one with an availability topic, on `<base>/<friendly name>`)
belongs to the bridge of its topic's first level, zigbee2mqtt's base topic.

- `bridge/state` (retained; `online`/`offline`, or `{"state": ...}` since 1.x's JSON
  payloads): `offline` means zigbee2mqtt stopped, so none of its devices can report: each
  is made offline at once. While the bridge is offline, a device's own retained
  `online` is stale and not believed; the bridge republishes every device's availability
  when it starts again.
- `bridge/devices` (retained; a JSON list, one object per paired device with its
  `friendly_name` and its `definition.model`): a configured device whose model is not one
  its profile covers is a configuration error that would refuse its presses as unmapped,
  so it is counted (`zigbee2mqtt_model_mismatch{device}`) and logged, as is a configured
  device zigbee2mqtt does not know (`zigbee2mqtt_unpaired{device}`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from drivers.intake import MessageIntake
from drivers.json_map import MalformedJsonError, parse_json, shown
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound

log = logging.getLogger(__name__)

STATE = "bridge/state"
DEVICES = "bridge/devices"


@dataclass(frozen=True, slots=True)
class BridgedDevice:
    """A configured device as zigbee2mqtt knows it."""

    id: str
    topic: str
    models: tuple[str, ...]  # what its profile covers; empty: not checked
    profile: str | None


def bridge_base(topic: str) -> str | None:
    """zigbee2mqtt's base topic of a device topic: its first level (None without one)."""
    base, sep, rest = topic.partition("/")
    return base if sep and base and rest else None


AVAILABILITY = {b"online": True, b"offline": False}


class BadAvailabilityError(ValueError):
    """An availability payload that says neither online nor offline."""


def parse_availability(payload: bytes | bytearray | str) -> bool:
    """True for online, False for offline, in either of zigbee2mqtt's two forms."""
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    plain = AVAILABILITY.get(raw.strip())
    if plain is not None:
        return plain
    try:
        body = parse_json(raw)
    except MalformedJsonError as exc:
        raise BadAvailabilityError(f"neither online/offline nor JSON: {exc}") from exc
    state = body.get("state") if isinstance(body, dict) else None
    if state not in ("online", "offline"):
        raise BadAvailabilityError(f"state={shown(state)}: expected \"online\" or "
                                   "\"offline\"")
    return bool(state == "online")


class Zigbee2MqttBridges:
    """The state of each zigbee2mqtt bridge the configured devices are behind."""

    def __init__(self, devices: Iterable[BridgedDevice], intake: MessageIntake,
                 counters: Counters, max_payload_bytes: int) -> None:
        self._by_base: dict[str, dict[str, BridgedDevice]] = {}  # base -> friendly -> dev
        self._base_of: dict[str, str] = {}
        for device in devices:
            base = bridge_base(device.topic)
            if base is None:
                continue
            friendly = device.topic[len(base) + 1:]
            self._by_base.setdefault(base, {})[friendly] = device
            self._base_of[device.id] = base
        self._offline: set[str] = set()  # bases whose bridge said offline
        self._intake = intake
        self._counters = counters
        self._max_payload = max_payload_bytes

    @property
    def topics(self) -> list[str]:
        return [f"{base}/{what}" for base in self._by_base for what in (STATE, DEVICES)]

    def bridge_offline(self, device: str) -> bool:
        """Whether the bridge `device` is behind said it stopped."""
        return self._base_of.get(device) in self._offline

    def handle(self, message: Inbound) -> None:
        base, _, what = message.topic.partition("/")
        devices = self._by_base.get(base)
        payload = message.payload
        if devices is None or what not in (STATE, DEVICES):
            return
        if not isinstance(payload, bytes | bytearray | str) or not payload:
            return  # a retained message cleared
        if len(payload) > self._max_payload:
            self._reject(base, what, "payload_too_large", f"{len(payload)} bytes")
            return
        if what == STATE:
            self._state(base, devices, payload)
        else:
            self._devices(base, devices, payload)

    def _state(self, base: str, devices: dict[str, BridgedDevice],
               payload: bytes | bytearray | str) -> None:
        try:
            online = parse_availability(payload)
        except BadAvailabilityError as exc:
            self._reject(base, STATE, "bad_bridge_state", str(exc))
            return
        self._counters.inc("zigbee2mqtt_state", bridge=base,
                           state="online" if online else "offline")
        if online:
            if base in self._offline:
                self._offline.discard(base)
                log.info("zigbee2mqtt on %s is running again", base)
            return
        if base not in self._offline:
            log.warning("zigbee2mqtt on %s stopped: its %d device(s) are offline until it "
                        "says otherwise", base, len(devices))
        self._offline.add(base)
        for device in devices.values():
            self._intake.unreachable(device.id)

    def _devices(self, base: str, devices: dict[str, BridgedDevice],
                 payload: bytes | bytearray | str) -> None:
        try:
            body = parse_json(payload)
        except MalformedJsonError as exc:
            self._reject(base, DEVICES, "malformed_json", str(exc))
            return
        if not isinstance(body, list):
            self._reject(base, DEVICES, "malformed_payload", "not a JSON list of devices")
            return
        paired: dict[str, Any] = {}
        for entry in body:
            if isinstance(entry, dict) and isinstance(entry.get("friendly_name"), str):
                paired[entry["friendly_name"]] = entry.get("definition")
        for friendly, device in devices.items():
            if friendly not in paired:
                self._counters.inc("zigbee2mqtt_unpaired", device=device.id)
                self._counters.log_once(
                    log, ("zigbee2mqtt_unpaired", device.id),
                    "device %s: zigbee2mqtt on %s has no device named %r; pair it and give "
                    "it that friendly name", device.id, base, friendly)
                continue
            if not device.models:
                continue
            definition = paired[friendly]
            model = definition.get("model") if isinstance(definition, dict) else None
            if model in device.models:
                continue
            said = (f"a {shown(model)}" if isinstance(model, str)
                    else "a device it does not support")
            self._counters.inc("zigbee2mqtt_model_mismatch", device=device.id)
            self._counters.log_once(
                log, ("zigbee2mqtt_model_mismatch", device.id),
                "device %s: zigbee2mqtt says it is %s, but its profile %s covers %s: its "
                "messages may be refused or mean something else; give it the profile of "
                "its model", device.id, said, device.profile, ", ".join(device.models))

    def _reject(self, base: str, what: str, reason: str, detail: str) -> None:
        self._counters.inc("zigbee2mqtt_rejected", bridge=base, reason=reason)
        self._counters.log_once(log, ("zigbee2mqtt_rejected", base, reason),
                                "zigbee2mqtt on %s: %s refused (%s): %s; repeats are "
                                "counted", base, what, reason, detail[:200])
