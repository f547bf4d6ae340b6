"""Third-party devices that publish JSON on MQTT: one topic per device, mapped by config.

A device's `event_key` names the JSON key whose value is translated through `events`
into an event type; keys listed in `readings` become telemetry. Anything malformed is
counted and logged once per topic; the gateway keeps running.
"""

from __future__ import annotations

import logging

import aiomqtt
import msgspec

from drivers.intake import Intake
from gateway.clock import Clock
from gateway.config import MqttDevice
from gateway.counters import Counters
from gateway.kinds import make_event
from gateway.model import Reading, Scalar, new_id

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(dict[str, object])


class MqttIngress:
    """Parses ingress messages for all MQTT-attached devices."""

    def __init__(
        self, devices: list[MqttDevice], intake: Intake, clock: Clock, counters: Counters
    ) -> None:
        self._by_topic = {d.mqtt.topic: d for d in devices}
        self._intake = intake
        self._clock = clock
        self._counters = counters

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    async def handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        device = self._by_topic.get(topic)
        if device is None:
            return
        payload = message.payload
        if not isinstance(payload, bytes | bytearray | str):
            self._reject(topic, "empty_payload", "payload is empty")
            return
        try:
            body = _decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._reject(topic, "malformed_json", f"not a JSON object: {exc}")
            return
        self._intake.seen(device.id)
        ts = self._clock.now_ms()
        settings = device.mqtt
        values: dict[str, Scalar] = {}
        for key in settings.readings:
            value = body.get(key)
            if isinstance(value, bool | int | float | str):
                values[key] = value
            elif value is not None:
                self._reject(topic, "bad_field", f"field {key!r} is not a number, flag or text")
        if values:
            self._intake.reading(
                Reading(id=new_id(ts), ts=ts, kind=device.kind, device=device.id, values=values)
            )
        if settings.event_key is not None and settings.event_key in body:
            raw = body[settings.event_key]
            event_type = settings.events.get(str(raw)) if raw is not None else None
            if event_type is None:
                self._reject(topic, "unmapped_event",
                             f"{settings.event_key}={raw!r} is not in the device's events")
            else:
                await self._intake.event(
                    make_event(device.kind, device.id, event_type, ts, values)
                )
        self._counters.inc("ingress_messages", device=device.id)

    def _reject(self, topic: str, reason: str, detail: str) -> None:
        self._counters.inc("ingress_rejected", reason=reason, topic=topic)
        self._counters.log_once(log, ("ingress", reason, topic),
                                "ingress message on %s rejected (%s): %s; later ones are only "
                                "counted", topic, reason, detail)
