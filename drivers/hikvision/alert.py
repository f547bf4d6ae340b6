"""One ISAPI event notification (`EventNotificationAlert`, JSON or XML) in the kinds' model.

What a notification carries and what the gateway keeps of it:

- `AccessControllerEvent` on an access terminal: granted (with the verify method), denied
  (with the reason), door opened / closed / forced open / held open, tamper, duress, the
  terminal's alarm input; `doorNo` kept, `cardNo` pseudonymised, `name` and
  `employeeNoString` dropped (counted), temperatures dropped (a temperature must not be
  tied to a person).
- `AccessControllerEvent` on a face-temperature terminal (kind temp_gate): the
  thermometry fields `currTemperature` (in `thermometryUnit`), `isAbnomalTemperature` (sic)
  and `mask` become a reading; an abnormal temperature is a `fever` alarm and no mask a
  `no_mask` event; every field that names a person, the card number included, is dropped.
- `IO`: the alarm input `inputIOPortID` active or inactive.
- `heartBeat`: the terminal is alive.

Field names and values as Hikvision's ISAPI developer guide and the terminals' pushes give
them (`AccessControllerEvent` with `majorEventType`, `subEventType`, `serialNo`,
`currTemperature`, `isAbnomalTemperature`, `mask` "yes"/"no"/"unknown", `thermometryUnit`
"celsius"/"fahrenheit"/"kelvin").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.hikvision.codes import access_event, verify_method
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceEvent, DeviceKind, Reading, Scalar, new_id

Pseudonymise = Callable[[str], str | None]

# fields that name or number a person: never kept
_PERSONAL = {"name": "name", "employeeNoString": "employee_no", "employeeNo": "employee_no"}


class AlertError(ValueError):
    """A notification that is not one the gateway can read."""


@dataclass(slots=True)
class Notification:
    """What one notification became."""

    events: list[DeviceEvent] = field(default_factory=list)
    reading: Reading | None = None
    heartbeat: bool = False
    serial: str | None = None  # the terminal's own number of the event
    dropped: Counter[str] = field(default_factory=Counter)  # personal data, by what
    ignored: str | None = None  # why nothing came of it
    problems: list[tuple[str, str]] = field(default_factory=list)


def alert_of(document: object) -> Mapping[str, Any]:
    """The alert inside a decoded JSON document (bare or under `EventNotificationAlert`)."""
    if not isinstance(document, dict):
        raise AlertError("the notification is not a JSON object")
    inner = document.get("EventNotificationAlert")
    alert = inner if isinstance(inner, dict) else document
    if not isinstance(alert.get("eventType"), str):
        raise AlertError("the notification has no eventType")
    return alert


def decode(alert: Mapping[str, Any], kind: DeviceKind, device: str, now_ms: int,
           pseudonymise: Pseudonymise | None) -> Notification:
    """The events and reading of one alert; AlertError if it cannot be read at all."""
    out = Notification()
    event_type = str(alert.get("eventType", ""))
    if event_type.lower() == "heartbeat":
        out.heartbeat = True
        return out
    if event_type == "AccessControllerEvent":
        body = alert.get("AccessControllerEvent")
        if not isinstance(body, dict):
            raise AlertError("AccessControllerEvent without its AccessControllerEvent object")
        # once per event and kind of data, however many fields carry it
        for what in {w for k, w in _PERSONAL.items() if body.get(k) not in (None, "")}:
            out.dropped[what] += 1
        serial = body.get("serialNo")
        out.serial = str(serial) if isinstance(serial, int | str) and str(serial) else None
        if kind is DeviceKind.TEMP_GATE:
            _thermal(body, device, now_ms, out)
        else:
            _access(body, kind, device, now_ms, pseudonymise, out)
        return out
    if event_type == "IO":
        if kind is not DeviceKind.ACCESS:
            out.ignored = "event_type"
            return out
        state = str(alert.get("eventState", "")).lower()
        if state not in ("active", "inactive"):
            raise AlertError(f"IO alarm with eventState {state[:20]!r} (active, inactive)")
        fields: dict[str, Scalar] = {}
        port = _int(alert.get("inputIOPortID"))
        if port is not None:
            fields["input"] = port
        type_ = "alarm_input" if state == "active" else "alarm_input_cleared"
        out.events.append(make_event(kind, device, type_, now_ms, fields))
        return out
    out.ignored = "event_type"
    return out


def _access(body: Mapping[str, Any], kind: DeviceKind, device: str, now_ms: int,
            pseudonymise: Pseudonymise | None, out: Notification) -> None:
    major, minor = _int(body.get("majorEventType")), _int(body.get("subEventType"))
    if major is None or minor is None:
        raise AlertError("AccessControllerEvent without majorEventType and subEventType")
    mapped = access_event(major, minor)
    for key in ("currTemperature", "isAbnomalTemperature"):
        if key in body:
            out.dropped["temperature"] += 1
            break
    if mapped is None:
        out.ignored = "event_code"
        _card(body, None, out)  # not kept: still dropped and counted
        return
    type_, reason = mapped
    fields: dict[str, Scalar] = {}
    door = _int(body.get("doorNo"))
    if door is not None:
        fields["door"] = door
    if reason is not None:
        fields["reason"] = reason
    if type_ == "granted":
        method = verify_method(minor)
        if method is not None:
            fields["method"] = method
    card = _card(body, pseudonymise, out)
    if card is not None:
        fields["card"] = card
    out.events.append(make_event(kind, device, type_, now_ms, fields))


def _card(body: Mapping[str, Any], pseudonymise: Pseudonymise | None,
          out: Notification) -> str | None:
    raw = body.get("cardNo")
    if not isinstance(raw, str | int) or not str(raw).strip():
        return None
    pseudonym = pseudonymise(str(raw)) if pseudonymise is not None else None
    if pseudonym is None:
        out.dropped["card"] += 1
    return pseudonym


def _thermal(body: Mapping[str, Any], device: str, now_ms: int, out: Notification) -> None:
    if body.get("cardNo") not in (None, ""):
        out.dropped["card"] += 1  # a temperature is never tied to a card
    raw = _float(body.get("currTemperature"))
    if raw is None:
        out.ignored = "no_temperature"
        return
    unit = str(body.get("thermometryUnit", "celsius")).lower()
    celsius = {"celsius": raw, "fahrenheit": (raw - 32) * 5 / 9,
               "kelvin": raw - 273.15}.get(unit)
    if celsius is None:
        raise AlertError(f"thermometryUnit {unit[:20]!r} (celsius, fahrenheit, kelvin)")
    specs = MODELS[DeviceKind.TEMP_GATE].readings
    values: dict[str, Scalar] = {}
    try:
        values["body_temp_c"] = specs["body_temp_c"].checked("body_temp_c", round(celsius, 1))
    except OutOfRangeError as exc:
        out.problems.append(("out_of_range", str(exc)))
        return
    abnormal = _bool(body.get("isAbnomalTemperature"))
    if abnormal is not None:
        values["abnormal"] = int(abnormal)
    mask = str(body.get("mask", "")).lower()
    if mask in ("yes", "no"):
        values["mask"] = int(mask == "yes")
    out.reading = Reading(id=new_id(now_ms), ts=now_ms, kind=DeviceKind.TEMP_GATE,
                          device=device, values=values)
    if abnormal:
        out.events.append(make_event(DeviceKind.TEMP_GATE, device, "fever", now_ms,
                                     {"body_temp_c": values["body_temp_c"]}))
    if mask == "no":
        out.events.append(make_event(DeviceKind.TEMP_GATE, device, "no_mask", now_ms))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value == value and abs(value) < 1e6 else None
    if isinstance(value, str) and len(value) <= 16:
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if parsed == parsed and abs(parsed) < 1e6 else None
    return None


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None
