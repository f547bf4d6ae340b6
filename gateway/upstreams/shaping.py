"""A record as one upstream's policy lets it out: selected, cut to its fields, pseudonymised,
its place made coarser and its time rounded; or counted into an aggregate."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.config import Location
from gateway.core.kinds import MODELS
from gateway.core.model import (
    RECORD_PRIVACY,
    Alert,
    DataClass,
    DeviceEvent,
    Record,
    Scalar,
)
from gateway.upstreams.policy import (
    PLACE_FIELDS,
    Policy,
    Precision,
    RecordType,
    SharingRule,
)
from gateway.upstreams.transport import Parcel

Value = Scalar | None
Places = Callable[[str], Location | None]  # device id -> where it is
Tags = Callable[[str], frozenset[str]]  # device id -> its tags

_PLACE_KEY = re.compile(r"^building-(?P<b>[^-]+)(?:-unit-(?P<u>.+)|-floor-(?P<f>-?\d+))?$")
_KEPT = {Precision.UNIT: ("building", "unit", "floor"), Precision.FLOOR: ("building", "floor"),
         Precision.BUILDING: ("building",), Precision.COMPOUND: ()}
PSEUDONYM_HEX = 32  # 128 bits of HMAC-SHA256


@dataclass(frozen=True, slots=True)
class Shaped:
    """A record that leaves, and what the audit keeps of it."""

    parcel: Parcel
    rule: SharingRule
    subject: str  # the local device (or place) it is about: never leaves
    due_ms: int  # not before this (epoch ms): the rule's delay
    fields: tuple[str, ...]  # the fields that went, in clear or as pseudonyms
    personal: tuple[str, ...]  # field:class:clear|pseudonym of the personal ones among them


@dataclass(frozen=True, slots=True)
class Counted:
    """A record that goes into an aggregate: its period and group."""

    rule: SharingRule
    period_start: int
    group: tuple[tuple[str, str], ...]
    seq: int
    ts: int


def location_of(device: str, places: Places) -> Location:
    """A device's place from the configuration; an alert keyed by a place (`building-3`,
    `building-3-unit-2`, `building-3-floor-5`) from its key."""
    found = places(device)
    if found is not None:
        return found
    match = _PLACE_KEY.match(device)
    if match is None:
        return Location()
    floor = match.group("f")
    return Location(building=match.group("b"), unit=match.group("u"),
                    floor=int(floor) if floor is not None else None)


def view(record: DeviceEvent | Alert, site: str, location: Location) -> dict[str, Value]:
    """Every field a policy may name, of one record."""
    out: dict[str, Value] = {}
    if isinstance(record, DeviceEvent):
        out.update(record.fields)  # the record's own fields never shadow these below
        out.update({"rec": RecordType.EVENT.value, "type": record.type, "cls": record.cls.value})
    else:
        out.update({"rec": RecordType.ALERT.value, "rule": record.rule,
                    "state": record.state.value, "severity": record.severity.value,
                    "since": record.since, "value": record.value,
                    "message": record.message, "by": record.by, "cause": record.cause})
    out.update({"id": record.id, "ts": record.ts, "site": site, "kind": record.kind.value,
                "device": record.device, "building": location.building,
                "unit": location.unit, "floor": location.floor})
    return out


def selects(rule: SharingRule, record: DeviceEvent | Alert, location: Location,
            tags: frozenset[str] = frozenset()) -> bool:
    s = rule.select
    if isinstance(record, DeviceEvent):
        if RecordType.EVENT not in s.records:
            return False
        if s.types is not None and record.type not in s.types:
            return False
        if s.rules is not None or s.states is not None or s.severities is not None:
            return False  # alert criteria: no event meets them
    else:
        if RecordType.ALERT not in s.records:
            return False
        if s.rules is not None and record.rule not in s.rules:
            return False
        if s.states is not None and record.state not in s.states:
            return False
        if s.severities is not None and record.severity not in s.severities:
            return False
        if s.types is not None:
            return False  # event types: no alert has one
    if s.kinds is not None and record.kind not in s.kinds:
        return False
    if s.devices is not None and record.device not in s.devices:
        return False
    if s.tags is not None and not s.tags & tags:
        return False
    return s.buildings is None or location.building in s.buildings


class Shaper:
    """One upstream's policy applied to records."""

    def __init__(self, name: str, policy: Policy, site: str, key: bytes | None,
                 places: Places, tags: Tags | None = None) -> None:
        if policy.pseudonymises and key is None:
            raise ValueError(f"upstream {name}: its policy {policy.file} pseudonymises, and "
                             "no pseudonym key is set (pseudonym_key_env)")
        self.name = name
        self.policy = policy
        self._site = site
        self._key = key
        self._places = places
        self._tags = tags or (lambda device: frozenset())

    def pseudonym(self, value: Value) -> str:
        """This upstream's keyed pseudonym of `value`: another upstream's key gives another,
        and only the holder of the key can tell which value it stands for."""
        assert self._key is not None
        return hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()[
            :PSEUDONYM_HEX]

    def rule_for(self, record: Record) -> tuple[SharingRule, Location] | None:
        """The first rule that selects `record`; None: it does not leave (default deny)."""
        if not isinstance(record, DeviceEvent | Alert):
            return None  # acknowledgements and notifications are the compound's own
        location = location_of(record.device, self._places)
        tags = self._tags(record.device)
        for rule in self.policy.rules:
            if selects(rule, record, location, tags):
                return rule, location
        return None

    def shape(self, seq: int, record: Record) -> Shaped | Counted | None:
        found = self.rule_for(record)
        if found is None:
            return None
        rule, location = found
        assert isinstance(record, DeviceEvent | Alert)
        full = view(record, self._site, location)
        kept_places = _KEPT[rule.place]
        for name in PLACE_FIELDS:
            if name not in kept_places:
                full[name] = None
        if rule.aggregate is not None:
            period = rule.aggregate.period_ms
            group = tuple((name, str(full.get(name))) for name in rule.aggregate.by
                          if full.get(name) is not None)
            return Counted(rule, record.ts - record.ts % period, group, seq, record.ts)
        if rule.round_ms:
            for name in ("ts", "since"):
                value = full.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    full[name] = value - value % rule.round_ms
        # every parcel carries its record's id: the far side's idempotency key
        key = delivery_id(record)
        payload: dict[str, Value] = {"id": key}
        personal: list[str] = []
        for name in rule.fields:
            if full.get(name) is not None:
                payload[name] = full[name]
        for name in rule.pseudonymise:
            if full.get(name) is not None:
                payload[name] = self.pseudonym(full[name])
        for name in payload:
            data_class = _data_class(record, name)
            if data_class is not None:
                how = "pseudonym" if name in rule.pseudonymise else "clear"
                personal.append(f"{name}:{data_class.value}:{how}")
        # what names the parcel (an MQTT topic) comes from what leaves, nothing else
        device = payload.get("device")
        if device is None:
            device = _place_label(full) or self._site
        kind = str(payload.get("kind", "any"))
        if isinstance(record, DeviceEvent):
            type_ = str(payload.get("type", "event"))
        else:
            type_ = str(payload.get("state", "alert"))
        parcel = Parcel(record_id=key, seq=seq, device=str(device), kind=kind,
                        type=type_, payload=_json(payload), rule=rule.id)
        return Shaped(parcel, rule, record.device, record.ts + rule.delay_ms,
                      tuple(payload), tuple(personal))

    def aggregate_parcel(self, rule: SharingRule, period_start: int,
                         group: tuple[tuple[str, str], ...], count: int, seq: int) -> Shaped:
        assert rule.aggregate is not None
        labels = ",".join(f"{k}={v}" for k, v in group)
        record_id = f"{rule.id}:{period_start}:{labels}"
        payload: dict[str, Value] = {
            "id": record_id, "rec": "count", "site": self._site, "rule": rule.id,
            "period_start": period_start, "period_s": rule.aggregate.period_ms // 1000,
            "count": count, **dict(group)}
        kinds = rule.select.kinds
        kind = next(iter(kinds)).value if kinds is not None and len(kinds) == 1 else "any"
        place = _place_label({k: v for k, v in group}) or self._site
        parcel = Parcel(record_id=record_id, seq=seq, device=place, kind=kind, type="count",
                        payload=_json(payload), rule=rule.id)
        return Shaped(parcel, rule, place, period_start, tuple(payload), ())


def delivery_id(record: DeviceEvent | Alert) -> str:
    """The id a record leaves with, the same on every delivery: an event's id; for an alert,
    whose id names the alert and not its transition, `{alert id}:{state}`."""
    if isinstance(record, Alert):
        return f"{record.id}:{record.state.value}"
    return record.id


def _data_class(record: DeviceEvent | Alert, name: str) -> DataClass | None:
    model = MODELS[record.kind]
    if name == "type" and isinstance(record, DeviceEvent):
        return model.sensitive_events.get(record.type)
    if name in ("rule", "state") and isinstance(record, Alert):
        return model.alert_class
    return model.privacy.get(name) or RECORD_PRIVACY.get(name)


def _place_label(fields: dict[str, Value]) -> str:
    building = fields.get("building")
    if building is None:
        return ""
    label = f"building-{building}"
    if fields.get("unit") is not None:
        label += f"-unit-{fields['unit']}"
    if fields.get("floor") is not None:
        label += f"-floor-{fields['floor']}"
    return label


def _json(payload: dict[str, Value]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
