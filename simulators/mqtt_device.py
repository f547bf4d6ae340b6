"""A device that publishes JSON on MQTT, as zigbee2mqtt or an NB-IoT platform would."""

from __future__ import annotations

from typing import Any

import aiomqtt
import msgspec

from drivers.profile import Profile
from simulators.json_device import JsonPayloads


class MqttDeviceSimulator:
    """Publishes a profile's payloads on `topic`; fault knobs send what real devices get wrong."""

    def __init__(self, client: aiomqtt.Client, topic: str, profile: Profile) -> None:
        self._client = client
        self.topic = topic
        self.payloads = JsonPayloads(profile)

    async def report(self, readings: dict[str, float] | None = None, event: str | None = None,
                     **raw: Any) -> dict[str, Any]:
        body = self.payloads.payload(readings, event, **raw)
        await self._client.publish(self.topic, msgspec.json.encode(body), qos=1)
        return body

    async def send_malformed(self) -> None:
        await self._client.publish(self.topic, b'{"smoke": tru', qos=1)

    async def send_raw(self, payload: bytes) -> None:
        await self._client.publish(self.topic, payload, qos=1)
