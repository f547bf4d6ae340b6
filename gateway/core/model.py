"""The typed records that cross every boundary: readings, device events, alerts, acks.

Each is a frozen msgspec struct with a schema version `v`, a unique `id` and a UTC
epoch-millisecond `ts`. The same encoding is used on MQTT, in the journal and in tests.
"""

from __future__ import annotations

import enum
import itertools
import os
from typing import Final

import msgspec

SCHEMA_VERSION: Final = 1

Scalar = float | int | bool | str


class DeviceKind(enum.StrEnum):
    SMOKE = "smoke"
    ACCESS = "access"
    MANHOLE = "manhole"
    ELDER_BUTTON = "elder_button"
    TEMP_GATE = "temp_gate"
    GATEWAY = "gateway"  # the gateway itself: its own events (overloaded), never a device


# the kinds a configured device may have; a rule's `kind: any` means these
DEVICE_KINDS: Final = frozenset(k for k in DeviceKind if k is not DeviceKind.GATEWAY)


class DeliveryClass(enum.StrEnum):
    """How hard the gateway works to keep a record: alarms are never evicted."""

    ALARM = "alarm"
    EVENT = "event"
    TELEMETRY = "telemetry"


class DataClass(enum.StrEnum):
    """Personal data as PIPL sorts it: personal, or sensitive (health, whereabouts).

    What leaves the compound in clear with a sensitive class needs a legal basis named in
    the sharing policy that lets it out.
    """

    PERSONAL = "personal"  # identifies a person: a card's pseudonym, the elder behind a button
    HEALTH = "health"  # sensitive: a body temperature, an SOS
    WHEREABOUTS = "whereabouts"  # sensitive: where a person passed (a door, a gate)

    @property
    def sensitive(self) -> bool:
        return self is not DataClass.PERSONAL


# personal fields of records whatever the device: who acknowledged or resolved an alert
RECORD_PRIVACY: Final[dict[str, DataClass]] = {"by": DataClass.PERSONAL}


class AlertState(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


_MS_MASK: Final = 0xFFFFFFFFFFFF  # 48 bits of milliseconds
_COUNT_MASK: Final = 0xFFFFFFFFFF  # 40 bits of counter


class _IdSource:
    """Where new ids come from: a random prefix drawn when the process starts, and a counter.

    An id was 80 random bits from the kernel per reading: a system call each, thousands a
    second under load. Unique across restarts all the same: each process draws 40 random
    bits of its own (a forked child draws again), and counts up from a random start.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(5).hex()
        self.count = itertools.count(int.from_bytes(os.urandom(5)))
        # (millisecond, counter >> 8, the id's first 30 digits they make): under load many
        # ids share both, and those digits are written once for all of them. One tuple,
        # replaced whole: an id made in another thread meanwhile reads a consistent one
        self.stem: tuple[int, int, str] = (-1, -1, "")


_ids = _IdSource()
_LOW_DIGITS: Final = tuple(f"{low:02x}" for low in range(256))  # the counter's last two


def new_id(ts_ms: int) -> str:
    """A unique, time-ordered id: 12 hex digits of milliseconds, then 10 of the process's
    random prefix and 10 of its counter."""
    ids = _ids
    count = next(ids.count) & _COUNT_MASK
    high = count >> 8
    stem = ids.stem
    if stem[0] != ts_ms or stem[1] != high:
        stem = ids.stem = (ts_ms, high, f"{ts_ms & _MS_MASK:012x}{ids.prefix}{high:08x}")
    return stem[2] + _LOW_DIGITS[count & 0xFF]


# The records are never tracked by the garbage collector (`gc=False`): they hold strings,
# numbers and dicts of them, which cannot form a cycle, and a loaded gateway holds tens of
# thousands (the telemetry ring, the journal's newest) that every full collection walked.
class Reading(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="reading",
        tag_field="rec"):
    """Telemetry from one device at one instant."""

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    kind: DeviceKind
    device: str
    values: dict[str, Scalar]


class DeviceEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="event",
        tag_field="rec"):
    """Something a device reported happening: a press, an alarm, a door forced open."""

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    kind: DeviceKind
    device: str
    type: str
    cls: DeliveryClass = DeliveryClass.EVENT
    fields: dict[str, Scalar] = msgspec.field(default_factory=dict)


class Alert(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="alert",
        tag_field="rec"):
    """One transition of an alert; `id` names the alert, `ts` the transition."""

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    rule: str
    device: str
    kind: DeviceKind
    state: AlertState
    severity: Severity
    since: int
    value: Scalar | None = None
    message: str = ""
    by: str | None = None
    cause: str | None = None


class AckCommand(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="ack",
        tag_field="rec"):
    """A person's acknowledgement of the alert of `rule` on `device`; with a `reason`, the
    person resolves it by hand (where its rule allows that)."""

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    rule: str
    device: str
    by: str
    reason: str | None = None


class NotifyReason(enum.StrEnum):
    ESCALATION = "escalation"  # a step of the rule's escalation policy came due
    RESOLVED = "resolved"  # the alert ended: tell every group that was told it began


class Notify(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="notify",
        tag_field="rec"):
    """Tell one contact group about an alert.

    `id` is deterministic, `{alert_id}:{step}:{round}` for escalation steps and
    `{alert_id}:resolved:{group}` for the end, so a replayed intent is recognised as the
    same one and delivered once.
    """

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    alert_id: str
    rule: str
    device: str  # the alert's key: a device id, or a place such as building-3
    severity: Severity
    reason: NotifyReason
    step: int
    round: int
    group: str
    targets: tuple[str, ...]  # apprise URLs or mqtt://topic; empty: nobody is set up
    message: str

    @staticmethod
    def step_id(alert_id: str, step: int, round_: int) -> str:
        return f"{alert_id}:{step}:{round_}"

    @staticmethod
    def resolved_id(alert_id: str, group: str) -> str:
        return f"{alert_id}:resolved:{group}"


Record = Reading | DeviceEvent | Alert | AckCommand | Notify

_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(Record)


def encode(record: Record) -> bytes:
    return _encoder.encode(record)


def decode(data: bytes | str) -> Record:
    """Decode any record; raises msgspec.ValidationError or msgspec.DecodeError."""
    record: Record = _record_decoder.decode(data)
    return record


def delivery_class(record: Record) -> DeliveryClass:
    if isinstance(record, Reading):
        return DeliveryClass.TELEMETRY
    if isinstance(record, Alert | Notify):
        return DeliveryClass.ALARM
    if isinstance(record, DeviceEvent):
        return record.cls
    return DeliveryClass.EVENT
