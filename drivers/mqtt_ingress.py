"""Third-party devices that publish JSON on MQTT: one topic per device.

Each device's payload is decoded by its profile's JSON mapping, or by the inline mapping
in its config (`event_key`, `events`, `readings`). Anything malformed is rejected, counted
per device and reason, and logged once per device until it recovers; the gateway keeps
running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiomqtt

from drivers.intake import Intake
from drivers.json_map import (
    JsonEvent,
    JsonMap,
    JsonMapper,
    JsonReading,
    MalformedJsonError,
    parse_json,
)
from drivers.pseudonym import Pseudonymiser
from gateway.clock import Clock
from gateway.config import MqttDevice
from gateway.counters import Counters

log = logging.getLogger(__name__)


def inline_mapping(device: MqttDevice) -> JsonMap:
    """The JsonMap equivalent of a device's inline `event_key`/`events`/`readings`."""
    settings = device.mqtt
    events = []
    if settings.event_key is not None and settings.events:
        events.append(JsonEvent(path=settings.event_key, map=dict(settings.events)))
    return JsonMap(readings=[JsonReading(path=r, reading=r) for r in settings.readings],
                   events=events)


class MqttIngress:
    """Decodes ingress messages for all MQTT-attached devices."""

    def __init__(
        self,
        devices: list[MqttDevice],
        mapping_of: Callable[[MqttDevice], JsonMap],
        intake: Intake,
        clock: Clock,
        counters: Counters,
        pseudonymise: Pseudonymiser | None = None,
    ) -> None:
        self._devices = {d.mqtt.topic: d for d in devices}
        self._mappers = {
            d.mqtt.topic: JsonMapper(mapping_of(d), d.kind, d.id, pseudonymise) for d in devices
        }
        self._intake = intake
        self._clock = clock
        self._counters = counters

    @property
    def topics(self) -> list[str]:
        return list(self._devices)

    async def handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        device = self._devices.get(topic)
        if device is None:
            return
        payload = message.payload
        if not isinstance(payload, bytes | bytearray | str) or not payload:
            self._reject(device.id, topic, "empty_payload", "the payload is empty")
            return
        try:
            body = parse_json(payload)
        except MalformedJsonError as exc:
            self._reject(device.id, topic, "malformed_json", f"not JSON: {exc}")
            return
        decoded = self._mappers[topic].decode(body, self._clock.now_ms())
        for reason, detail in decoded.problems:
            self._reject(device.id, topic, reason, detail)
        if decoded.problems and decoded.reading is None and not decoded.events:
            return
        self._intake.seen(device.id)
        if not decoded.problems:
            self._counters.recovered(device.id)
        if decoded.reading is not None:
            self._intake.reading(decoded.reading)
        for event in decoded.events:
            await self._intake.event(event)
        self._counters.inc("ingress_messages", device=device.id)

    def _reject(self, device: str, topic: str, reason: str, detail: str) -> None:
        self._counters.reject(log, device, reason, f"on {topic}: {detail}")
