"""Third-party devices that publish JSON on MQTT: one topic per device.

Each device's payload is decoded by its profile's JSON mapping, or by the inline mapping
in its config (`event_key`, `events`, `readings`). Anything malformed is rejected, counted
per device and reason, and logged once per device until it recovers; the gateway keeps
running.

A QoS 1 message the broker delivers again (after a lost connection, a restart of the
gateway or of the broker) carries the packet id it had; the same packet id with the same
content within `redelivery_window_s` of the first is the same message: it was journalled
already, and it is acknowledged and dropped, counted as `redelivered{device}`.

A retained message is an old one the broker kept, not something the device says
now: it is ignored and counted (reason `retained`), as is a payload larger than
`broker.max_payload_bytes` (reason `payload_too_large`), before anything parses it.

A device bridged by zigbee2mqtt has an availability topic as well, on which the bridge says
whether it can still reach the device: `online`/`offline` as plain text (zigbee2mqtt 1.x's
legacy payload) or `{"state": "online"}`. `offline` makes the device offline at once;
`online` counts as a sign of life, unless the bridge itself said it stopped
(drivers/zigbee2mqtt.py). These messages are retained on purpose (the current state), so a
retained one is read too. Anything else is rejected as `bad_availability`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.handover import keep_handing
from drivers.intake import MessageIntake
from drivers.json_map import (
    JsonEvent,
    JsonMap,
    JsonMapper,
    JsonReading,
    MalformedJsonError,
    parse_json,
)
from drivers.profile import ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from drivers.throttle import Throttle
from drivers.zigbee2mqtt import BadAvailabilityError, Zigbee2MqttBridges, parse_availability
from gateway.core.clock import Clock
from gateway.core.config import DEFAULT_MAX_PAYLOAD, MqttDevice
from gateway.core.counters import CounterKey, Counters
from gateway.core.inbound import Inbound
from gateway.core.journaling import Receipt, ReceiptBook
from gateway.core.model import DeviceEvent
from gateway.core.problems import ConfigError

log = logging.getLogger(__name__)

RECEIPT_PREFIX = "mqtt:"  # receipt keys: the broker's packet id
THROTTLE_LOG_S = 60.0  # a throttled device is logged at most this often
_NO_RECEIPT = Receipt("", b"", 0)  # a message that cannot come again (QoS 0)
_NO_EVENTS: list[DeviceEvent] = []  # read, never added to


@dataclass(frozen=True, slots=True)
class _Route:
    """What a device's messages need, made once at start instead of per message."""

    device: MqttDevice
    mapper: JsonMapper
    digest_prefix: bytes  # the topic as hashed into a receipt's digest
    accepted: CounterKey  # ingress_messages{device}
    redelivered: CounterKey  # redelivered{device}
    throttle: Throttle | None = None  # its readings beyond the rate it may send
    # the top-level keys of its events, quoted as they stand in JSON: a message without
    # any of them (and without escapes) carries no event, and is throttled unparsed
    event_keys: tuple[bytes, ...] = ()


def _event_keys(mapping: JsonMap) -> tuple[bytes, ...]:
    return tuple(sorted({b'"' + e.path.split(".", 1)[0].encode() + b'"'
                         for e in mapping.events}))


def _readings_alone(payload: bytes, event_keys: tuple[bytes, ...]) -> bool:
    """Whether `payload` cannot carry an event: none of the keys, and no escape that could
    spell one (a device that writes its keys escaped is parsed every time)."""
    return b"\\" not in payload and not any(key in payload for key in event_keys)


def availability_topic(device: MqttDevice, profiles: ProfileLibrary) -> str | None:
    """Where a bridge says whether it reaches the device: its own setting, else its
    profile's (None for a profile that cannot be loaded: the config check reports it)."""
    if device.mqtt.availability_topic is not None:
        return device.mqtt.availability_topic
    if device.profile is None:
        return None
    try:
        profile = profiles.get(device.profile)
    except (KeyError, ConfigError):
        return None
    return profile.availability_for(device.mqtt.topic)


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
        intake: MessageIntake,
        clock: Clock,
        counters: Counters,
        pseudonymise: Pseudonymiser | None = None,
        *,
        receipts: ReceiptBook | None = None,
        redelivery_window_s: float = 3600.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        availability_of: Callable[[MqttDevice], str | None] = lambda d: None,
        bridges: Zigbee2MqttBridges | None = None,
        receipt_prefix: str = RECEIPT_PREFIX,
        rate_hz: float = 0.0,
        burst_s: float = 5.0,
    ) -> None:
        # each broker session numbers its packets apart: one prefix per session
        self._prefix = receipt_prefix
        self._rate_hz = rate_hz
        self._routes = {
            d.mqtt.topic: _Route(d, JsonMapper(mapping_of(d), d.kind, d.id, pseudonymise),
                                 d.mqtt.topic.encode() + b"\0",
                                 Counters.key("ingress_messages", device=d.id),
                                 Counters.key("redelivered", device=d.id),
                                 Throttle(rate_hz, burst_s, clock.monotonic()) if rate_hz
                                 else None, _event_keys(mapping_of(d)))
            for d in devices
        }
        # availability topic -> device; a device's own topic is never also one
        self._availability = {
            topic: d for d in devices
            if (topic := availability_of(d)) is not None and topic not in self._routes
        }
        self._bridges = bridges
        self._bridge_topics = set(bridges.topics) if bridges is not None else set()
        self._intake = intake
        self._clock = clock
        self._counters = counters
        self._receipts = receipts
        self._window_ms = round(redelivery_window_s * 1000)
        # whether a QoS 1 message's receipt is looked up and kept: known at start
        self._keeps_receipts = receipts is not None and self._window_ms > 0
        self._max_payload = max_payload_bytes

    @property
    def topics(self) -> list[str]:
        return [*self._routes, *self._availability, *self._bridge_topics]

    def handle(self, message: Inbound) -> Awaitable[None] | None:
        """Decode a message and hand over its reading at once; events are journalled by
        the coroutine returned (None when the message carries none)."""
        topic = message.topic
        route = self._routes.get(topic)
        if route is None:
            bridged = self._availability.get(topic)
            if bridged is not None:
                self._availability_message(bridged, message)
            elif topic in self._bridge_topics and self._bridges is not None:
                self._bridges.handle(message)
            return None
        device = route.device
        if message.retain:
            # kept by the broker from before: a press or an alarm is news only when sent
            self._reject(device.id, topic, "retained", "a retained message is not news: "
                         "ignored (the device should publish without the retain flag)")
            return None
        payload = message.payload
        if ((type(payload) is not bytes and not isinstance(payload, bytearray | str))
                or not payload):
            self._reject(device.id, topic, "empty_payload", "the payload is empty")
            return None
        if len(payload) > self._max_payload:
            self._reject(device.id, topic, "payload_too_large", f"{len(payload)} bytes, more "
                         f"than broker.max_payload_bytes ({self._max_payload})")
            return None
        throttle = route.throttle
        throttled_before = throttle is not None and _readings_alone(
            payload.encode() if isinstance(payload, str) else bytes(payload), route.event_keys)
        if throttled_before:
            assert throttle is not None
            if not throttle.allow(self._clock.monotonic()):
                # readings alone, beyond the device's rate: not worth parsing under a flood
                self._intake.seen(device.id)
                self._throttled(route)
                return None
        receipt: Receipt | None = _NO_RECEIPT  # a QoS 0 message cannot come again
        if message.qos and self._keeps_receipts:
            receipt = self._receipt(message, payload, route)
        if receipt is None:
            self._counters.inc_key(route.redelivered)
            return None
        try:
            body = parse_json(payload)
        except MalformedJsonError as exc:
            self._reject(device.id, topic, "malformed_json", f"not JSON: {exc}")
            return None
        ts = self._clock.now_ms()
        reading = route.mapper.quick(body, ts)  # a reading with nothing to say, mostly
        events: list[DeviceEvent] = _NO_EVENTS
        if reading is None:
            decoded = route.mapper.decode(body, ts)
            for reason, detail in decoded.problems:
                self._reject(device.id, topic, reason, detail)
            reading, events = decoded.reading, decoded.events
            if decoded.problems and reading is None and not events:
                return None
            clean = not decoded.problems
        else:
            clean = True
        self._intake.seen(device.id)
        if clean:
            self._counters.recovered(device.id)
        if (not events and throttle is not None and not throttled_before
                and not throttle.allow(self._clock.monotonic())):
            self._throttled(route)  # readings alone: an event, an alarm first, always passes
            return None
        if reading is not None:
            self._intake.reading(reading)
        if events:
            return self._journal(route, events, receipt, message.qos == 0)
        if receipt is not _NO_RECEIPT and self._receipts is not None:
            self._receipts.note(receipt)  # a reading is not journalled: kept in memory
        self._counters.inc_key(route.accepted)
        return None

    def _receipt(self, message: Inbound, payload: bytes | bytearray | str,
                 route: _Route) -> Receipt | None:
        """The receipt to journal with a QoS 1 message's events (receipts kept); None when
        it is the broker's redelivery of a message journalled already."""
        assert self._receipts is not None
        raw = payload.encode() if isinstance(payload, str) else payload
        digest = hashlib.blake2b(route.digest_prefix + raw, digest_size=16).digest()
        key = f"{self._prefix}{message.mid}"
        now = self._clock.now_ms()
        known = self._receipts.receipt(key)
        if known is not None and known.digest == digest and now - known.at <= self._window_ms:
            return None
        return Receipt(key, digest, now)

    async def connected(self, session_present: bool) -> None:
        """On every connection: a broker that kept no session delivers nothing again, and
        numbers its packets anew, so the receipts of earlier packets mean nothing now."""
        if not session_present and self._receipts is not None:
            await self._receipts.forget_receipts(self._prefix)

    async def _journal(self, route: _Route, events: list[DeviceEvent], receipt: Receipt,
                       once: bool) -> None:
        """`once`: a QoS 0 message, which the broker never delivers again: refused, its
        events are handed over again until the journal takes them (later messages of the
        topic wait behind them); a QoS 1 message is left unacknowledged instead."""
        if once:
            await keep_handing(lambda: self._intake.events(events, None), events,
                               self._clock, self._counters)
        else:
            await self._intake.events(events, None if receipt is _NO_RECEIPT else receipt)
        self._counters.inc_key(route.accepted)

    def _availability_message(self, device: MqttDevice, message: Inbound) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray | str) or not payload:
            return  # a retained state cleared (the device was removed from the bridge)
        if len(payload) > self._max_payload:
            self._reject(device.id, message.topic, "payload_too_large", f"{len(payload)} "
                         f"bytes, more than broker.max_payload_bytes ({self._max_payload})")
            return
        try:
            online = parse_availability(payload)
        except BadAvailabilityError as exc:
            self._reject(device.id, message.topic, "bad_availability", str(exc))
            return
        self._counters.inc("availability", device=device.id,
                           state="online" if online else "offline")
        if online and self._bridges is not None and self._bridges.bridge_offline(device.id):
            return  # kept from before the bridge stopped: it republishes when it is back
        if online:
            self._intake.seen(device.id)
        else:
            self._intake.unreachable(device.id)

    def _throttled(self, route: _Route) -> None:
        device = route.device
        self._counters.inc("throttled", device=device.id)
        self._counters.inc("shed_readings", kind=device.kind.value, reason="device_rate")
        throttle = route.throttle
        now = self._clock.monotonic()
        if throttle is not None and now - throttle.logged_at >= THROTTLE_LOG_S:
            throttle.logged_at = now
            log.warning("device %s sends faster than limits.device_rate_hz (%g/s): its "
                        "readings beyond it are dropped (counted as throttled); its events "
                        "pass", device.id, self._rate_hz)

    def _reject(self, device: str, topic: str, reason: str, detail: str) -> None:
        self._counters.reject(log, device, reason, f"on {topic}: {detail}")
