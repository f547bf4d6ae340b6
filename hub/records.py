"""What arrives from a compound: a subject (`sc.{district}.{site}.{kind}.{device}.{type}`)
and the JSON its sharing policy let out, read back into the gateway's typed records.

A policy may have dropped fields: what a point or an alert needs (the time, an alert's
rule, state and severity) must be there, the rest has defaults. The device and its kind
come from the subject, as the compound named them (possibly a pseudonym).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gateway.core.city import CitySubject
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


class BadParcel(Exception):
    """A message the hub cannot read; `reason` is the counter's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class _Shared(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A record as a policy may have shaped it: only `ts` is always needed."""

    rec: str | None = None
    id: str | None = None
    ts: int
    # a device event
    type: str | None = None
    cls: DeliveryClass = DeliveryClass.EVENT
    fields: dict[str, Scalar] = msgspec.field(default_factory=dict)
    # a reading
    values: dict[str, Scalar] = msgspec.field(default_factory=dict)
    # an alert
    rule: str | None = None
    state: AlertState | None = None
    severity: Severity | None = None
    since: int | None = None
    value: Scalar | None = None
    message: str = ""
    by: str | None = None


_decoder = msgspec.json.Decoder(_Shared)
_STATES = {s.value for s in AlertState}

CityRecord = Reading | DeviceEvent | Alert


@dataclass(frozen=True, slots=True)
class Arrival:
    """One compound's record as the hub read it."""

    subject: CitySubject
    record: CityRecord

    @property
    def compound(self) -> tuple[str, str]:
        return self.subject.district, self.subject.site


def read(subject: str, data: bytes, msg_id: str | None) -> Arrival:
    """The record in one message; BadParcel saying what is wrong with it."""
    where = CitySubject.parse(subject)
    if where is None:
        raise BadParcel("subject", f"{subject[:200]!r} is not sc.district.site.kind.device.type")
    try:
        kind = DeviceKind(where.kind)
    except ValueError:
        raise BadParcel("kind", f"unknown device kind {where.kind[:40]!r} in {subject[:200]!r}"
                        ) from None
    if len(data) > MAX_PAYLOAD:
        raise BadParcel("too_large", f"{len(data)} bytes on {subject[:200]!r}")
    try:
        shared = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadParcel("payload", f"{exc} on {subject[:200]!r}") from None
    record_id = shared.id or msg_id
    if not record_id:
        raise BadParcel("no_id", f"neither an id nor a Nats-Msg-Id on {subject[:200]!r}")
    rec = shared.rec or ("reading" if where.type == "reading" else
                         "alert" if where.type in _STATES else "event")
    record: CityRecord
    if rec == "reading":
        record = Reading(id=record_id, ts=shared.ts, kind=kind, device=where.device,
                         values=shared.values)
    elif rec == "event":
        record = DeviceEvent(id=record_id, ts=shared.ts, kind=kind, device=where.device,
                             type=shared.type or where.type, cls=shared.cls,
                             fields=shared.fields)
    elif rec == "alert":
        state = shared.state or (AlertState(where.type) if where.type in _STATES else None)
        if shared.rule is None or state is None or shared.severity is None:
            raise BadParcel("alert", f"an alert without its rule, state or severity on "
                                     f"{subject[:200]!r}")
        record = Alert(id=record_id, ts=shared.ts, rule=shared.rule, device=where.device,
                       kind=kind, state=state, severity=shared.severity,
                       since=shared.since if shared.since is not None else shared.ts,
                       value=shared.value, message=shared.message, by=shared.by)
    else:
        raise BadParcel("rec", f"a {rec[:40]!r} record on {subject[:200]!r}: the hub keeps "
                               "readings, events and alerts")
    return Arrival(where, record)
