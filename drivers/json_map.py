"""Mapping JSON payloads (MQTT ingress, HTTP push) onto a kind's readings and events.

A mapping is data: dotted paths into the payload, the reading or event each feeds, scaling,
and which path carries a card number (pseudonymised here, before anything else sees it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from drivers.pseudonym import Pseudonymiser
from gateway.core.counters import clip
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceEvent, DeviceKind, Reading, Scalar, new_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonReading(_Strict):
    path: str = Field(min_length=1)
    reading: str
    scale: float = 1.0
    offset: float = 0.0


class JsonEvent(_Strict):
    """An event from one path: either `equals` + `event`, or a `map` of values to events."""

    path: str = Field(min_length=1)
    equals: bool | int | float | str | None = None
    event: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    # values of a `map` path that are known and raise nothing (a button's release report,
    # the empty `action` zigbee2mqtt may send after each one): not counted as unmapped
    no_event: list[str] = Field(default_factory=list)
    on_change: bool = False  # for devices that report their whole state every time


class JsonMap(_Strict):
    readings: list[JsonReading] = Field(default_factory=list)
    events: list[JsonEvent] = Field(default_factory=list)
    card: str | None = None  # path of a card number; published only as a pseudonym
    ignore: list[str] = Field(default_factory=list)  # personal data that must never be mapped

    def problems(self, kind: DeviceKind) -> list[tuple[str, str]]:
        """(key path, message) for every name the kind's model does not know."""
        model = MODELS[kind]
        out = []
        for i, r in enumerate(self.readings):
            if r.reading not in model.readings:
                out.append((f"readings[{i}].reading",
                            f"{r.reading!r} is not a reading of {kind} devices"))
        ignored = set(self.ignore)
        used = [(f"readings[{i}].path", r.path) for i, r in enumerate(self.readings)]
        used += [(f"events[{i}].path", e.path) for i, e in enumerate(self.events)]
        if self.card is not None:
            used.append(("card", self.card))
        for key, path in used:
            if path in ignored or any(path.startswith(p + ".") for p in ignored):
                out.append((key, f"{path!r} is listed under ignore: personal data is never "
                                 "mapped"))
        if self.card is not None and kind is DeviceKind.TEMP_GATE:
            out.append(("card", "temperature readings are never tied to a person: no card "
                                "for temp_gate devices"))
        for i, e in enumerate(self.events):
            if (e.event is None) == (not e.map):
                out.append((f"events[{i}]", "give either event (with equals) or map"))
            if e.no_event and not e.map:
                out.append((f"events[{i}].no_event", "only a map has values without an event"))
            for value in set(e.no_event) & set(e.map):
                out.append((f"events[{i}].no_event", f"{value!r} is mapped to an event too"))
            for name in ([e.event] if e.event else []) + list(e.map.values()):
                if name not in model.events:
                    out.append((f"events[{i}]", f"{name!r} is not an event of {kind} devices"))
        return out


@dataclass(slots=True)
class Decoded:
    reading: Reading | None = None
    events: list[DeviceEvent] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)


_MISSING = object()
_json = msgspec.json.Decoder()
ROUNDED_KEPT = 1024  # values remembered rounded, for all devices: forgotten all at once
_NO_LOW, _NO_HIGH = -math.inf, math.inf  # the bounds of a range that has none
# compiled readings by their content, shared by the devices mapped alike (bounded by the
# configuration's mappings)
_SHARED: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_ROUNDED: dict[float, float] = {}


class MalformedJsonError(ValueError):
    """The bytes are not JSON (or not UTF-8, or nested too deeply, or repeat a key)."""


def parse_json(data: bytes | bytearray | str) -> Any:
    """JSON from a device; MalformedJsonError for anything that is not.

    An object that repeats a key is refused: which of two `action`s a device meant is
    not for the gateway to guess.
    """
    try:
        body = _json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # invalid UTF-8 inside a string surfaces as UnicodeDecodeError, not DecodeError
        raise MalformedJsonError(str(exc)) from exc
    except RecursionError as exc:
        raise MalformedJsonError(f"nested deeper than {MAX_DEPTH} levels") from exc
    if (type(data) is bytes and type(body) is dict and data.count(b":") == len(body)
            and _OPEN_BRACKET not in data and _BACKSLASH not in data):
        # the common payload, one object of numbers and strings, in three scans of the
        # bytes: as many ':' as keys decoded means each ':' is a key's own and none was
        # given twice, and with no list (and no key inside) it is not nested deeper
        return body
    keys, depth, quoted = _shape(body)
    if depth > MAX_DEPTH:
        raise MalformedJsonError(f"nested deeper than {MAX_DEPTH} levels")
    # every key in the text is followed by a ':'. Without escapes, a ':' inside a string
    # is one in the decoded strings too: when the text has no more ':' than the decoded
    # keys and strings account for, no key was given twice (its ':' would be extra)
    if keys and (_colons(data) != keys + quoted or _escapes(data)):
        _refuse_repeated_keys(data)
    return body


MAX_DEPTH = 64  # levels of objects and arrays; devices send two or three
# bytes looked for as integers: `91 in data` is a memchr, `b"[" in data` a substring
# search that costs a message a tenth of a microsecond more
_OPEN_BRACKET = ord("[")
_BACKSLASH = ord("\\")


def _shape(body: Any) -> tuple[int, int, int]:
    """The number of object keys in `body`, its depth and the ':' in its keys and strings,
    without recursion."""
    # read for every message: plain loops and type checks, no generators
    kind = type(body)
    if kind is not dict and kind is not list:
        return 0, 0, 0
    keys, deepest, quoted = 0, 0, 0
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_DEPTH:
                break
        if type(node) is dict:
            keys += len(node)
            quoted += "".join(node).count(":")
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str:
                quoted += child.count(":")
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
    return keys, deepest, quoted


def _colons(data: bytes | bytearray | str) -> int:
    return data.count(":") if isinstance(data, str) else data.count(b":")


def _escapes(data: bytes | bytearray | str) -> bool:
    return ("\\" in data) if isinstance(data, str) else (b"\\" in data)


def _refuse_repeated_keys(data: bytes | bytearray | str) -> None:
    def pairs(items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise MalformedJsonError(f"the key {clip(repr(key), 40)} appears twice in "
                                         "one object")
            seen.add(key)

    try:
        # the stdlib parser hands over each object's pairs before they become a dict
        json.loads(data, object_pairs_hook=pairs)
    except MalformedJsonError:
        raise
    except (ValueError, RecursionError):
        pass  # msgspec took it: a difference between parsers is not the device's fault


def lookup(body: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c`), or _MISSING."""
    node = body
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


class JsonMapper:
    """Decodes one device's payloads; remembers the last value of `on_change` paths."""

    def __init__(self, mapping: JsonMap, kind: DeviceKind, device: str,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        self._map = mapping
        self._kind = kind
        self._device = device
        self._specs = MODELS[kind].readings
        self._pseudonymise = pseudonymise
        self._last: dict[int, Any] = {}  # last value seen per on_change event entry
        # the mapping's readings as plain tuples, each with its range (-inf, inf: none)
        # spelled out: read for every message of the device, ReadingSpec.checked inlined.
        # One copy for all the devices mapped alike: a compound has hundreds of them
        readings = tuple(
            (r.path, "." not in r.path, r.reading, r.scale, r.offset, spec,
             _NO_LOW if spec.low is None else spec.low,
             _NO_HIGH if spec.high is None else spec.high, spec.integer)
            for r in mapping.readings for spec in (self._specs[r.reading],))
        self._readings = _SHARED.setdefault(readings, readings)
        # a mapping of readings alone (a temperature gate's) skips the card and events
        self._readings_only = mapping.card is None and not mapping.events
        # ... and when they are all at the top level, its payloads have a quick way
        self._quick = self._readings_only and all(t[1] for t in self._readings)

    def quick(self, body: Any, ts: int) -> Reading | None:
        """The reading of a payload with nothing to say about it, the common case: a mapping
        of readings alone at the top level, and each value there a number within its range.
        None for anything else: `decode` then tells what it is, and what was wrong."""
        if not self._quick or type(body) is not dict:
            return None
        values: dict[str, Scalar] = {}
        for path, _, name, scale, offset, _, low, high, integer in self._readings:
            raw = body.get(path)
            if raw is None:  # missing, or null: no value
                continue
            kind = type(raw)
            if kind is not float and kind is not int:  # a flag given as true/false too
                return None
            value = raw * scale + offset
            if not low <= value <= high:
                return None
            values[name] = round(value) if integer else _rounded(value)
        if not values:
            return None
        return Reading(id=new_id(ts), ts=ts, kind=self._kind, device=self._device,
                       values=values)

    def decode(self, body: Any, ts: int) -> Decoded:
        out = Decoded()
        if not isinstance(body, dict):
            out.problems.append(("malformed_payload", "the payload is not a JSON object"))
            return out
        values: dict[str, Scalar] = {}
        bad: set[str] = set()  # paths already reported
        for path, top_level, name, scale, offset, spec, low, high, integer in self._readings:
            raw = body.get(path, _MISSING) if top_level else lookup(body, path)
            if raw is _MISSING or raw is None:
                continue
            kind = type(raw)
            if kind is bool:
                raw = int(raw)
            elif kind is not int and kind is not float:
                bad.add(path)
                out.problems.append(("bad_value", f"{path}={shown(raw)} is not a number"))
                continue
            value = raw * scale + offset
            # ReadingSpec.checked without its two calls; what is not plainly within the
            # range (a NaN, an infinity) goes through it
            if low <= value <= high:
                values[name] = round(value) if integer else _rounded(value)
            else:
                try:
                    values[name] = spec.checked(name, value)
                except OutOfRangeError as exc:
                    out.problems.append(("out_of_range", str(exc)))
        if self._readings_only:
            if values:
                out.reading = Reading(id=new_id(ts), ts=ts, kind=self._kind,
                                      device=self._device, values=values)
            return out
        fields: dict[str, Scalar] = dict(values)
        if self._map.card is not None:
            card = lookup(body, self._map.card)
            if card is not _MISSING and card is not None and not _is_card(card):
                # the value itself is personal data: never in a log or an answer
                out.problems.append(("bad_card", f"{self._map.card} is a "
                                     f"{_json_type(card)}, not a card number (text or "
                                     "integer); the card was dropped"))
            elif _is_card(card):
                if self._pseudonymise is None:
                    out.problems.append(("no_pseudonym_key", "a card number arrived but the "
                                         "site has no pseudonym_key; it was dropped"))
                elif (pseudonym := self._pseudonymise(str(card))) is not None:
                    fields["card"] = pseudonym
        for index, e in enumerate(self._map.events):
            raw = lookup(body, e.path)
            if raw is _MISSING or raw is None:
                # null is "no value" (zigbee2mqtt sends `"action": null` with a report
                # that carries no action, and nulls for flags it has not read yet)
                continue
            if e.event is not None and not _comparable(raw, e.equals):
                if e.path not in bad:  # one problem per path, however many entries read it
                    bad.add(e.path)
                    out.problems.append(("bad_value", f"{e.path}={shown(raw)} is not a "
                                         f"{_json_type(e.equals)}"))
                continue
            if e.on_change:
                previous = self._last.get(index, _MISSING)
                self._last[index] = raw
                if previous == raw:
                    continue
                # the first report after a start tells a present condition (an alarm
                # standing), not every quiet flag: no flood of "cleared" events
                if previous is _MISSING and not raw:
                    continue
            if e.event is not None:
                if raw == e.equals:
                    out.events.append(make_event(self._kind, self._device, e.event, ts, fields))
            else:
                event = e.map.get(_key(raw))
                if event is None and _key(raw) in e.no_event:
                    continue
                if event is None:
                    out.problems.append(("unmapped_event",
                                         f"{e.path}={shown(raw)} is not mapped"))
                else:
                    out.events.append(make_event(self._kind, self._device, event, ts, fields))
        if values:
            out.reading = Reading(id=new_id(ts), ts=ts, kind=self._kind, device=self._device,
                                  values=values)
        return out


def _rounded(value: float) -> float:
    """`round(value, 6)`, remembered: it takes as long as the rest of a value's checks, and
    a device's values repeat (a gate's in steps of 0.1 °C)."""
    rounded = _ROUNDED.get(value)
    if rounded is None:
        rounded = round(value, 6)
        if value:  # not a zero: 0.0 and -0.0 are one key
            if len(_ROUNDED) >= ROUNDED_KEPT:
                _ROUNDED.clear()
            _ROUNDED[value] = rounded
    return rounded


SHOWN_CHARS = 40  # of a bad value, in a rejection's detail


def shown(raw: Any) -> str:
    """A bad value as a rejection's detail shows it: cut short, a device can send megabytes."""
    return clip(repr(raw), SHOWN_CHARS)


def _is_card(raw: Any) -> bool:
    return isinstance(raw, str | int) and not isinstance(raw, bool)


def _comparable(raw: Any, equals: bool | float | str | None) -> bool:
    """Whether `raw` is of the JSON type of `equals` (numbers and flags compare with numbers:
    devices write a flag as 1 or true)."""
    if equals is None or raw is None:
        return True
    if isinstance(equals, bool):
        return isinstance(raw, bool) or (isinstance(raw, int) and raw in (0, 1))
    if isinstance(equals, int | float):
        return isinstance(raw, int | float)
    return isinstance(raw, str)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _key(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)
