"""What arrives from a compound: a subject (`sc.{district}.{site}.{kind}.{device}.{type}`)
and the JSON object its sharing policy let out, read back into the gateway's typed records.

A policy keeps some fields and drops the rest (gateway/upstreams/shaping.py): an event's
own fields stand beside `ts`, `type` and the place; an alert's beside its rule, state and
severity. What a point or an alert needs must be there (the time; an alert's rule and
severity), the rest has defaults. The device and its kind come from the subject, as the
compound named them (possibly a pseudonym, or a place). The gateway's own record encoding
(`gateway.core.model.encode`, fields nested) reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.core.city import CitySubject
from gateway.core.config import Location
from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
    Scalar,
    Severity,
)

MAX_PAYLOAD = 64 * 1024
# what a payload's keys mean besides an event's own fields
_RESERVED = frozenset({"v", "id", "ts", "rec", "site", "kind", "device", "building", "unit",
                       "floor", "type", "cls", "fields", "values", "rule", "state",
                       "severity", "since", "value", "message", "by", "cause"})
_STATES = {s.value for s in AlertState}


class BadParcel(Exception):
    """A message the hub cannot read; `reason` is the counter's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


CityRecord = Reading | DeviceEvent | Alert


@dataclass(frozen=True, slots=True)
class Arrival:
    """One compound's record as the hub read it, and the place it came with."""

    subject: CitySubject
    record: CityRecord
    place: Location | None = None

    @property
    def compound(self) -> tuple[str, str]:
        return self.subject.district, self.subject.site


def read(subject: str, data: bytes, msg_id: str | None) -> Arrival:
    """The record in one message; BadParcel saying what is wrong with it."""
    where = CitySubject.parse(subject)
    shown = repr(subject[:200])
    if where is None:
        raise BadParcel("subject", f"{shown} is not sc.district.site.kind.device.type")
    try:
        kind = DeviceKind(where.kind)
    except ValueError:
        raise BadParcel("kind", f"unknown device kind {where.kind[:40]!r} in {shown}"
                        ) from None
    if len(data) > MAX_PAYLOAD:
        raise BadParcel("too_large", f"{len(data)} bytes on {shown}")
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise BadParcel("payload", f"{exc} on {shown}") from None
    if not isinstance(obj, dict):
        raise BadParcel("payload", f"not a JSON object on {shown}")
    try:
        return _arrival(where, kind, obj, msg_id)
    except (ValueError, TypeError) as exc:  # a value of the wrong type or out of its set
        raise BadParcel("payload", f"{exc} on {shown}") from None


def _arrival(where: CitySubject, kind: DeviceKind, obj: dict[str, Any],
             msg_id: str | None) -> Arrival:
    shown = repr(str(where)[:200])
    ts = obj.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise BadParcel("no_ts", f"no integer `ts` on {shown}: the policy must keep it")
    record_id = _text(obj.get("id")) or msg_id
    if not record_id:
        raise BadParcel("no_id", f"neither an id nor a Nats-Msg-Id on {shown}")
    rec = _text(obj.get("rec")) or ("reading" if where.type == "reading" else
                                    "alert" if where.type in _STATES else "event")
    record: CityRecord
    if rec == "reading":
        record = Reading(id=record_id, ts=ts, kind=kind, device=where.device,
                         values=_scalars(obj.get("values")))
    elif rec == "event":
        fields = {k: v for k, v in obj.items() if k not in _RESERVED and _scalar(v)}
        fields.update(_scalars(obj.get("fields")))
        record = DeviceEvent(id=record_id, ts=ts, kind=kind, device=where.device,
                             type=_text(obj.get("type")) or where.type,
                             cls=DeliveryClass(obj.get("cls", "event")), fields=fields)
    elif rec == "alert":
        state = obj.get("state") or (where.type if where.type in _STATES else None)
        rule, severity = _text(obj.get("rule")), obj.get("severity")
        if not rule or state is None or severity is None:
            raise BadParcel("alert", f"an alert without its rule, state or severity on "
                                     f"{shown}: the policy must keep them")
        since = obj.get("since")
        value = obj.get("value")
        # a transition leaves as `{alert id}:{state}` (one id per transition): the alert's
        # own id is what names it on the board
        alert_id = record_id.removesuffix(f":{state}") or record_id
        record = Alert(id=alert_id, ts=ts, rule=rule, device=where.device, kind=kind,
                       state=AlertState(state), severity=Severity(severity),
                       since=since if isinstance(since, int) else ts,
                       value=value if _scalar(value) else None,
                       message=_text(obj.get("message")), by=_text(obj.get("by")) or None)
    else:
        raise BadParcel("rec", f"a {rec[:40]!r} record on {shown}: the hub keeps readings, "
                               "events and alerts")
    return Arrival(where, record, _place(obj))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def _scalars(value: Any) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if _scalar(v)}


def _place(obj: dict[str, Any]) -> Location | None:
    building, unit, floor = obj.get("building"), obj.get("unit"), obj.get("floor")
    if building is None and unit is None and floor is None:
        return None
    return Location(building=str(building) if building is not None else None,
                    unit=str(unit) if unit is not None else None,
                    floor=floor if isinstance(floor, int) and not isinstance(floor, bool)
                    else None)
