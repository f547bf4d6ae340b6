"""Verified frames to the kind's typed readings and events, as the profile maps them."""

from __future__ import annotations

from drivers.json_map import Decoded
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames.datatypes import as_number, unpack
from drivers.serial_frames.frame import Frame
from drivers.serial_frames.frame_format import FieldSpec, FrameSpec, SerialFormat
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceKind, Reading, Scalar, new_id


class FrameDecoder:
    """Decodes one device's frames; card numbers leave it only as pseudonyms."""

    def __init__(self, fmt: SerialFormat, kind: DeviceKind, device: str,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        self._types = {spec.type: spec for spec in fmt.frames}
        self._kind = kind
        self._device = device
        self._specs = MODELS[kind].readings
        self._pseudonymise = pseudonymise

    def decode(self, frame: Frame, ts: int) -> Decoded:
        out = Decoded()
        spec = self._types.get(frame.type)
        if spec is None:
            out.problems.append(("unknown_type", f"frame type 0x{frame.type:02X} is not in "
                                 "the profile"))
            return out
        if len(frame.payload) < spec.min_payload:
            out.problems.append(("short_payload", f"{spec.name}: {len(frame.payload)} payload "
                                 f"bytes, the profile needs {spec.min_payload}"))
            return out
        values: dict[str, Scalar] = {}
        extra: dict[str, Scalar] = {}
        card: str | None = None
        names = [spec.event] if spec.event else []
        for field in spec.fields:
            raw = frame.payload[field.offset:field.offset + field.width]
            try:
                value = unpack(field.datatype, raw)
            except ValueError as exc:
                # a card number's digits are personal data: the problem names the field only
                detail = (f"not a valid {field.datatype} card number (its digits are not "
                          "shown)" if field.card else str(exc))
                out.problems.append(("bad_value", f"{spec.name}.{field.name}: {detail}"))
                continue
            if field.card:
                card = _card(value)
                continue
            try:
                names += self._events(spec, field, value, out)
                if field.reading is not None:
                    self._reading(field, as_number(value), values, out)
            except ValueError as exc:
                out.problems.append(("bad_value", f"{spec.name}.{field.name}: {exc}"))
                continue
            if field.event_field is not None:
                extra[field.event_field] = _scaled(field, value)
        fields: dict[str, Scalar] = {**values, **extra}
        if card:
            if self._pseudonymise is None:
                out.problems.append(("no_pseudonym_key", "a card number arrived but the site "
                                     "has no pseudonym_key; it was dropped"))
            elif (pseudonym := self._pseudonymise(card)) is not None:
                fields["card"] = pseudonym
        out.events = [make_event(self._kind, self._device, name, ts, fields) for name in names]
        if values:
            out.reading = Reading(id=new_id(ts), ts=ts, kind=self._kind, device=self._device,
                                  values=values)
        return out

    def _events(self, spec: FrameSpec, field: FieldSpec, value: int | str,
                out: Decoded) -> list[str]:
        if field.event is not None:
            if field.equals is None:
                return [field.event] if as_number(value) != 0 else []
            return [field.event] if _same(value, field.equals) else []
        if field.map:
            key = str(as_number(value)) if isinstance(value, int) or value.isdigit() else value
            name = field.map.get(key)
            if name is None:
                out.problems.append(("unmapped_event", f"{spec.name}.{field.name}={key} is "
                                     "not mapped"))
                return []
            return [name]
        return []

    def _reading(self, field: FieldSpec, number: int, values: dict[str, Scalar],
                 out: Decoded) -> None:
        assert field.reading is not None
        try:
            values[field.reading] = self._specs[field.reading].checked(
                field.reading, number * field.scale)
        except OutOfRangeError as exc:
            out.problems.append(("out_of_range", str(exc)))


def _same(value: int | str, wanted: int | str) -> bool:
    if isinstance(wanted, int) and isinstance(value, str) and value.isdigit():
        return int(value) == wanted
    return value == wanted


def _scaled(field: FieldSpec, value: int | str) -> Scalar:
    if isinstance(value, str) or field.scale == 1:
        return value
    return round(value * field.scale, 6)


def _card(value: int | str) -> str | None:
    """The card number as text; leading zeros dropped so BCD and binary readers agree.

    An all-zero or blank card means the event had no card (a door forced open).
    """
    text = str(value).strip()
    if text.isdigit():
        text = text.lstrip("0")
    return text or None
