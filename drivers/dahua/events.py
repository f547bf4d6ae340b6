"""One part of a Dahua event stream, in the kinds' model.

Dahua's HTTP API (eventManager.cgi, `action=attach`) sends each event as a text part
`Code=<code>;action=<Start|Stop|Pulse>;index=<n>[;data=<JSON>]` (the JSON may span lines)
and a part `Heartbeat` every `heartbeat` seconds. What the gateway makes of the codes:

- `AccessControl` (Pulse): `Status` 1 granted (`Method` says how), 0 denied (`ErrorCode`
  says why); `Door` kept, `CardNo` pseudonymised, `CardName`/`Name`/`UserID` dropped;
  on a face-temperature terminal (kind temp_gate) `CurrentTemperature`
  (`TemperatureUnit` 0 °C, 1 °F, 2 K), `IsOverTemperature` and `Mask` become a reading,
  a `fever` alarm and a `no_mask` event, and nothing naming a person is kept.
- `DoorStatus` (`Status` "Open"/"Close"), `BreakIn` (forced open), `DoorNotClosed` (held
  open), `Duress`, `ChassisIntruded` (tamper, Start/Stop), `AlarmLocal` (the terminal's
  alarm input `index`, Start/Stop).

Method and error codes as Dahua's access-control API tables give them (the same tables are
published for Dahua-made Intelbras controllers: "Open Door Method", "Error Codes").
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from drivers.json_map import MalformedJsonError, parse_json
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceEvent, DeviceKind, Reading, Scalar, new_id

Pseudonymise = Callable[[str], str | None]

METHODS: Final[dict[int, str]] = {
    0: "password", 1: "card", 2: "card_and_password", 3: "password_and_card", 4: "remote",
    5: "exit_button", 6: "fingerprint", 7: "password_card_fingerprint",
    8: "password_and_fingerprint", 9: "card_and_fingerprint", 11: "multi_user", 12: "key",
    13: "duress_password", 14: "qr_code", 15: "face", 17: "id_card",
    18: "face_and_id_card", 19: "bluetooth", 20: "custom_password",
    21: "user_id_and_password", 22: "face_and_password", 23: "fingerprint_and_password",
    24: "fingerprint_and_face", 25: "card_and_face",
}
ERRORS: Final[dict[int, str]] = {
    0x10: "unauthorised", 0x11: "card_lost_or_cancelled", 0x12: "no_permission",
    0x13: "wrong_open_mode", 0x14: "expired", 0x15: "anti_passback",
    0x16: "duress_not_opened", 0x17: "door_normally_closed", 0x18: "interlock",
    0x19: "patrol_card", 0x20: "outside_schedule", 0x21: "holiday_schedule",
    0x40: "wrong_password", 0x41: "password_timeout", 0x42: "fingerprint_mismatch",
    0x43: "fingerprint_timeout", 0x44: "face_mismatch", 0x45: "face_timeout",
}
# Dahua NetSDK EM_MASK_STATE_TYPE: 0 unknown, 1 not recognised, 2 no mask, 3 mask
_MASK: Final = {2: 0, 3: 1}
# codes Start/Stop (or Pulse) -> (event on Start or Pulse, event on Stop)
_STATES: Final[dict[str, tuple[str | None, str | None]]] = {
    "BreakIn": ("forced_open", None),
    "DoorNotClosed": ("held_open", None),
    "Duress": ("duress", None),
    "ChassisIntruded": ("tamper", "tamper_cleared"),
    "AlarmLocal": ("alarm_input", "alarm_input_cleared"),
}
_PERSONAL: Final = {"CardName": "name", "Name": "name", "UserID": "employee_no"}


class StreamEventError(ValueError):
    """A part of the stream that is not an event the gateway can read."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    code: str
    action: str
    index: int
    data: Mapping[str, Any]


@dataclass(slots=True)
class Mapped:
    """What one event became."""

    events: list[DeviceEvent] = field(default_factory=list)
    reading: Reading | None = None
    key: str | None = None  # the event's own identity, where it carries one
    digest: bytes = b""
    dropped: Counter[str] = field(default_factory=Counter)
    ignored: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)


def parse_part(text: str) -> StreamEvent | None:
    """The event of one part; None for a heartbeat; StreamEventError for anything else."""
    body = text.strip()
    if body.lower() == "heartbeat":
        return None
    head, sep, data_text = body.partition(";data=")
    fields: dict[str, str] = {}
    for item in head.split(";"):
        key, eq, value = item.partition("=")
        if not eq:
            raise StreamEventError(f"not key=value: {item[:40]!r}")
        fields[key.strip().lower()] = value.strip()
    code = fields.get("code", "")
    if not code or len(code) > 64 or not code.isascii():
        raise StreamEventError("a part with no Code")
    action = fields.get("action", "Pulse")
    if action not in ("Start", "Stop", "Pulse"):
        raise StreamEventError(f"action {action[:20]!r} (Start, Stop, Pulse)")
    index_text = fields.get("index", "0")
    if not (index_text.isascii() and index_text.isdigit()) or len(index_text) > 6:
        raise StreamEventError(f"index {index_text[:20]!r} is not a number")
    data: Mapping[str, Any] = {}
    if sep:
        try:
            parsed = parse_json(data_text)
        except MalformedJsonError as exc:
            raise StreamEventError(f"data of {code} is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise StreamEventError(f"data of {code} is not a JSON object")
        data = parsed
    return StreamEvent(code, action, int(index_text), data)


def map_event(event: StreamEvent, kind: DeviceKind, device: str, now_ms: int,
              pseudonymise: Pseudonymise | None, prefix: str) -> Mapped:
    """The events and reading of one stream event on a terminal of `kind`."""
    out = Mapped()
    data = event.data
    # once per event and kind of data, however many fields carry it
    for what in {w for k, w in _PERSONAL.items() if data.get(k) not in (None, "")}:
        out.dropped[what] += 1
    if event.code == "AccessControl":
        if kind is DeviceKind.TEMP_GATE:
            _thermal(data, device, now_ms, out)
        else:
            _access(data, kind, device, now_ms, pseudonymise, out)
    elif event.code == "DoorStatus" and kind is DeviceKind.ACCESS:
        status = str(data.get("Status", "")).lower()
        if status in ("open", "close"):
            type_ = "door_opened" if status == "open" else "door_closed"
            out.events.append(make_event(kind, device, type_, now_ms, _door(data, event)))
        else:
            out.problems.append(("malformed_event", f"DoorStatus {status[:20]!r} "
                                 "(Open, Close)"))
    elif event.code in _STATES and kind is DeviceKind.ACCESS:
        on, off = _STATES[event.code]
        state = off if event.action == "Stop" else on
        if state is None:
            out.ignored = "event_state"
        else:
            fields: dict[str, Scalar] = ({"input": event.index}
                                         if event.code == "AlarmLocal" else _door(data, event))
            out.events.append(make_event(kind, device, state, now_ms, fields))
    else:
        out.ignored = "event_code"
    if out.events:
        out.key, out.digest = _identity(event, out, prefix)
    return out


def _door(data: Mapping[str, Any], event: StreamEvent) -> dict[str, Scalar]:
    door = data.get("Door", event.index)
    return {"door": door} if isinstance(door, int) and not isinstance(door, bool) else {}


def _access(data: Mapping[str, Any], kind: DeviceKind, device: str, now_ms: int,
            pseudonymise: Pseudonymise | None, out: Mapped) -> None:
    if "CurrentTemperature" in data or "IsOverTemperature" in data:
        out.dropped["temperature"] += 1  # never tied to a person
    status = data.get("Status")
    if status not in (0, 1) or isinstance(status, bool):
        out.problems.append(("malformed_event", "AccessControl without Status 0 or 1"))
        return
    fields: dict[str, Scalar] = {}
    door = data.get("Door")
    if isinstance(door, int) and not isinstance(door, bool):
        fields["door"] = door
    method = data.get("Method")
    if isinstance(method, int) and method in METHODS:
        fields["method"] = METHODS[method]
    if status == 0:
        error = data.get("ErrorCode")
        fields["reason"] = (ERRORS.get(error, "other") if isinstance(error, int)
                            else "other")
    card = data.get("CardNo")
    if isinstance(card, str) and card.strip():
        pseudonym = pseudonymise(card) if pseudonymise is not None else None
        if pseudonym is None:
            out.dropped["card"] += 1
        else:
            fields["card"] = pseudonym
    type_ = "granted" if status == 1 else "denied"
    out.events.append(make_event(kind, device, type_, now_ms, fields))


def _thermal(data: Mapping[str, Any], device: str, now_ms: int, out: Mapped) -> None:
    if isinstance(data.get("CardNo"), str) and data["CardNo"].strip():
        out.dropped["card"] += 1  # a temperature is never tied to a card
    raw = data.get("CurrentTemperature")
    if not isinstance(raw, int | float) or isinstance(raw, bool) or raw == 0:
        out.ignored = "no_temperature"  # 0.0: the terminal measured nothing
        return
    unit = data.get("TemperatureUnit", 0)
    convert = {0: lambda t: t, 1: lambda t: (t - 32) * 5 / 9, 2: lambda t: t - 273.15}
    if unit not in convert or isinstance(unit, bool):
        out.problems.append(("malformed_event", f"TemperatureUnit {unit!r} (0, 1, 2)"))
        return
    spec = MODELS[DeviceKind.TEMP_GATE].readings["body_temp_c"]
    values: dict[str, Scalar] = {}
    try:
        values["body_temp_c"] = spec.checked("body_temp_c", round(convert[unit](raw), 1))
    except OutOfRangeError as exc:
        out.problems.append(("out_of_range", str(exc)))
        return
    over = data.get("IsOverTemperature")
    if over in (0, 1, True, False):
        values["abnormal"] = int(bool(over))
    mask = data.get("Mask")
    if isinstance(mask, int) and mask in _MASK:
        values["mask"] = _MASK[mask]
    out.reading = Reading(id=new_id(now_ms), ts=now_ms, kind=DeviceKind.TEMP_GATE,
                          device=device, values=values)
    if values.get("abnormal") == 1:
        out.events.append(make_event(DeviceKind.TEMP_GATE, device, "fever", now_ms,
                                     {"body_temp_c": values["body_temp_c"]}))
    if values.get("mask") == 0:
        out.events.append(make_event(DeviceKind.TEMP_GATE, device, "no_mask", now_ms))


def _identity(event: StreamEvent, out: Mapped, prefix: str) -> tuple[str | None, bytes]:
    """The event's own key (its record number and time, where it carries them) and a
    digest of what the gateway made of it; nothing personal goes into either."""
    utc = event.data.get("UTC", event.data.get("RealUTC"))
    rec = event.data.get("RecNo", "")
    digest = hashlib.sha256(b"\0".join(
        f"{e.type}:{sorted(e.fields.items())}".encode() for e in out.events)).digest()
    if not isinstance(utc, int | float) or isinstance(utc, bool):
        return None, digest
    return f"{prefix}{event.code}:{event.action}:{event.index}:{utc}:{rec}", digest
