"""Devices as zigbee2mqtt relays them: state on `<base>/<friendly name>`, availability beside.

What zigbee2mqtt does that a plain MQTT device does not:
- every report is the device's whole cached state, except `action`, which zigbee2mqtt never
  caches: it appears in the one message of the press (lib/state.ts, dontCacheProperties);
- with `homeassistant.legacy_action_sensor` it follows each action with `"action": ""`;
- it says on `<topic>/availability`, retained, whether it still reaches the device: plain
  `online`/`offline` (1.x, `advanced.legacy_availability_payload: true`, its default there)
  or `{"state": "online"}` (2.x), once the device has been silent for its availability
  timeout (25 h for battery devices by default).
"""

from __future__ import annotations

from typing import Any

import aiomqtt
import msgspec

from drivers.json_map import JsonMap
from drivers.profile import Profile
from simulators.mqtt_device import MqttDeviceSimulator


class Zigbee2MqttDevice(MqttDeviceSimulator):
    """One zigbee2mqtt device: `report` publishes its state, `available` its availability."""

    def __init__(self, client: aiomqtt.Client, topic: str, profile: Profile, *,
                 legacy_availability: bool = False, empty_action_after: bool = False,
                 linkquality: int = 120) -> None:
        super().__init__(client, topic, profile)
        availability = profile.availability_for(topic)
        if availability is None:
            raise ValueError(f"profile {profile.name} has no availability topic: not a "
                             "zigbee2mqtt profile")
        self.availability_topic = availability
        self.legacy_availability = legacy_availability
        self.empty_action_after = empty_action_after
        self.linkquality = linkquality

    async def report(self, readings: dict[str, float] | None = None, event: str | None = None,
                     **raw: Any) -> dict[str, Any]:
        if "linkquality" not in (readings or {}) and self._maps_linkquality():
            raw.setdefault("linkquality", self.linkquality)
        body = await super().report(readings, event, **raw)
        if self.empty_action_after and body.get("action"):
            await self._client.publish(self.topic, msgspec.json.encode(
                body | {"action": ""}), qos=1)
        return body

    async def available(self, online: bool) -> None:
        state = "online" if online else "offline"
        payload = state.encode() if self.legacy_availability else msgspec.json.encode(
            {"state": state})
        await self._client.publish(self.availability_topic, payload, qos=1, retain=True)

    async def send_availability(self, payload: bytes) -> None:
        await self._client.publish(self.availability_topic, payload, qos=1, retain=True)

    def _maps_linkquality(self) -> bool:
        mapping = self.payloads.profile.mapping
        return isinstance(mapping, JsonMap) and any(r.path == "linkquality"
                                                    for r in mapping.readings)
