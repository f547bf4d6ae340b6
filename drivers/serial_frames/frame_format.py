"""A serial device's frame format as data: the `[serial]` section of a profile.

    [serial]
    header = "AA 55"            # hex; every frame starts with these bytes
    trailer = "0D"              # optional, hex; every frame ends with these bytes
    type_offset = 3             # the frame-type byte, counted from the frame start
    payload_offset = 4          # where the payload starts
    frame_timeout_s = 0.5       # a frame not complete this long after its header is truncated
    max_frame_bytes = 64
    [serial.length]
    offset = 2                  # from the frame start
    datatype = "u8"             # u8, u16be, u16le
    counts = "payload"          # payload | frame (all of it) | rest (everything after the field)
    [serial.checksum]
    algorithm = "crc16-modbus"  # sum8, xor8, crc16-modbus, crc16-ccitt
    start = 2                   # covers from here up to the checksum (just before the trailer)
    [[serial.frames]]
    type = 0x10
    name = "door_event"
    event = "..."               # optional: emitted for every frame of this type
    [[serial.frames.fields]]    # offsets count from the payload start
    name = "reason"
    offset = 0
    datatype = "u8"             # u8, u16be/le, i16be/le, u32be/le, bcd, ascii (bcd/ascii need size)
    map = { "1" = "granted" }   # or: reading = "...", scale = 0.1; event = "...", equals = 1;
                                #     card = true; event_field = "door"
    [[serial.frames.ignore]]    # bytes that are present but must never be mapped (names, faces)
    name = "holder_name"
    offset = 7
    size = 16
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from drivers.checksum import ALGORITHMS, Algorithm
from drivers.serial_frames.datatypes import INTEGERS, SIZED, Datatype, width
from gateway.core.kinds import MODELS
from gateway.core.model import DeviceKind

_NAME = r"^[a-z][a-z0-9_]{0,63}$"


def _hex(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("give the bytes as a hex string, e.g. \"AA 55\"")
    try:
        parsed = bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not hex bytes, e.g. \"AA 55\"") from exc
    if not parsed:
        raise ValueError("needs at least one byte")
    return parsed


HexBytes = Annotated[bytes, BeforeValidator(_hex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LengthField(_Strict):
    """Where the frame's length sits and what it counts."""

    offset: int = Field(ge=0, le=255)
    datatype: Literal["u8", "u16be", "u16le"] = "u8"
    counts: Literal["payload", "frame", "rest"] = "payload"

    @property
    def size(self) -> int:
        return INTEGERS[self.datatype][0]


class ChecksumSpec(_Strict):
    """A checksum over bytes [start, checksum position); it sits just before the trailer."""

    algorithm: Algorithm
    start: int = Field(default=0, ge=0, le=255)
    byte_order: Literal["big", "little"] | None = None  # CRC default: modbus little, ccitt big

    @property
    def size(self) -> int:
        return ALGORITHMS[self.algorithm][1]

    @property
    def order(self) -> Literal["big", "little"]:
        return self.byte_order or ALGORITHMS[self.algorithm][2]


class FieldSpec(_Strict):
    """One value in a payload and everything it feeds."""

    name: str = Field(pattern=_NAME)
    offset: int = Field(ge=0, le=4095)
    datatype: Datatype
    size: int | None = Field(default=None, ge=1, le=64)  # bcd and ascii only
    reading: str | None = None
    scale: float = 1.0
    event: str | None = None
    equals: int | str | None = None  # `event` fires on this value; without it, on non-zero
    map: dict[str, str] = Field(default_factory=dict)
    card: bool = False  # a card number: it leaves the driver only as a pseudonym
    event_field: str | None = Field(default=None, pattern=_NAME)

    @property
    def width(self) -> int:
        return width(self.datatype, self.size)


class IgnoredBytes(_Strict):
    """Bytes the device sends that the gateway must never map (a person's name, a face id)."""

    name: str = Field(pattern=_NAME)
    offset: int = Field(ge=0, le=4095)
    size: int = Field(ge=1, le=4096)


class FrameSpec(_Strict):
    type: int = Field(ge=0, le=255)
    name: str = Field(pattern=_NAME)
    event: str | None = None
    fields: list[FieldSpec] = Field(default_factory=list)
    ignore: list[IgnoredBytes] = Field(default_factory=list)

    @property
    def min_payload(self) -> int:
        """The shortest payload that holds every declared field and ignored range."""
        ends = [f.offset + f.width for f in self.fields if f.datatype in INTEGERS or f.size]
        ends += [i.offset + i.size for i in self.ignore]
        return max(ends, default=0)


class SerialFormat(_Strict):
    header: HexBytes
    trailer: HexBytes | None = None
    length: LengthField
    checksum: ChecksumSpec
    type_offset: int = Field(ge=0, le=255)
    payload_offset: int = Field(ge=1, le=255)
    frame_timeout_s: float = Field(default=0.5, gt=0, le=60)
    max_frame_bytes: int = Field(default=256, ge=4, le=4096)
    frames: list[FrameSpec] = Field(min_length=1)

    @property
    def fixed_bytes(self) -> int:
        """Bytes in every frame besides the payload."""
        return self.payload_offset + self.checksum.size + len(self.trailer or b"")

    def problems(self, kind: DeviceKind) -> list[tuple[str, str]]:
        """(key path, message) for every inconsistency and every name the kind does not know."""
        out: list[tuple[str, str]] = []
        head = len(self.header)
        fixed = {"length.offset": (self.length.offset, self.length.size),
                 "type_offset": (self.type_offset, 1)}
        for key, (start, size) in fixed.items():
            if start < head or start + size > self.payload_offset:
                out.append((key, f"must lie after the header ({head} bytes) and before "
                                 f"payload_offset ({self.payload_offset})"))
        if _overlap(fixed["length.offset"], fixed["type_offset"]):
            out.append(("type_offset", "overlaps the length field"))
        if self.checksum.start > self.payload_offset:
            out.append(("checksum.start", "must not start inside the payload"))
        if self.checksum.byte_order is not None and self.checksum.size == 1:
            out.append(("checksum.byte_order", f"{self.checksum.algorithm} is one byte"))
        if self.fixed_bytes > self.max_frame_bytes:
            out.append(("max_frame_bytes", f"smaller than the fixed part ({self.fixed_bytes})"))
        seen: dict[int, int] = {}
        for i, frame in enumerate(self.frames):
            if frame.type in seen:
                out.append((f"frames[{i}].type",
                             f"0x{frame.type:02X} is also frames[{seen[frame.type]}]"))
            seen.setdefault(frame.type, i)
            out += [(f"frames[{i}].{path}", msg) for path, msg in _frame_problems(frame, kind)]
            if self.fixed_bytes + frame.min_payload > self.max_frame_bytes:
                out.append((f"frames[{i}]", "does not fit max_frame_bytes"))
        return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def _frame_problems(frame: FrameSpec, kind: DeviceKind) -> list[tuple[str, str]]:
    model = MODELS[kind]
    out: list[tuple[str, str]] = []
    if frame.event is not None and frame.event not in model.events:
        out.append(("event", f"{frame.event!r} is not an event of {kind} devices"))
    names = [f.name for f in frame.fields] + [i.name for i in frame.ignore]
    spans: list[tuple[str, tuple[int, int]]] = []
    for j, ignored in enumerate(frame.ignore):
        if names.count(ignored.name) > 1:
            out.append((f"ignore[{j}].name", f"{ignored.name!r} is used twice"))
        spans.append((f"ignore {ignored.name!r}", (ignored.offset, ignored.size)))
    cards = 0
    for j, f in enumerate(frame.fields):
        where = f"fields[{j}]"
        if names.count(f.name) > 1:
            out.append((f"{where}.name", f"{f.name!r} is used twice"))
        if (f.datatype in SIZED) != (f.size is not None):
            out.append((f"{where}.size", f"{f.datatype} fields need a size"
                        if f.datatype in SIZED else f"{f.datatype} has a fixed size"))
            continue
        span = (f.offset, f.width)
        for other, other_span in spans:
            if _overlap(span, other_span):
                out.append((where, f"overlaps {other}"))
        spans.append((f"field {f.name!r}", span))
        out += [(f"{where}.{path}", msg) for path, msg in _field_problems(f, kind)]
        cards += f.card
    if cards > 1:
        out.append(("fields", "at most one card field per frame"))
    return out


def _field_problems(f: FieldSpec, kind: DeviceKind) -> list[tuple[str, str]]:
    model = MODELS[kind]
    out: list[tuple[str, str]] = []
    if not (f.reading or f.event or f.map or f.card or f.event_field):
        out.append(("name", f"{f.name!r} feeds nothing: map it, or list it under ignore"))
    if f.reading is not None:
        if f.reading not in model.readings:
            out.append(("reading", f"{f.reading!r} is not a reading of {kind} devices"))
        if f.datatype == "ascii":
            out.append(("reading", "an ascii field cannot be a reading"))
    if f.scale == 0:
        out.append(("scale", "must not be 0"))
    if f.event is not None and f.map:
        out.append(("map", "give either event (with equals) or map"))
    if f.equals is not None and f.event is None:
        out.append(("equals", "only with event"))
    for name in ([f.event] if f.event else []) + list(f.map.values()):
        if name not in model.events:
            out.append(("event" if name == f.event else "map",
                        f"{name!r} is not an event of {kind} devices"))
    if f.card and (f.reading or f.event or f.map or f.event_field):
        out.append(("card", "a card field feeds nothing else"))
    if f.card and f.datatype not in {"bcd", "ascii", "u32be", "u32le"}:
        out.append(("datatype", "a card number is bcd, ascii, u32be or u32le"))
    if f.event_field is not None and (f.event_field == "card" or f.event_field in model.readings):
        out.append(("event_field", f"{f.event_field!r} is a reserved field name"))
    return out


def parse_serial_format(
    raw: dict[str, Any], kind: DeviceKind
) -> tuple[SerialFormat, list[tuple[str, str]]]:
    """The `[serial]` section of a profile, and (key path, message) for each problem in it.

    Raises pydantic.ValidationError when the section does not even have the right shape.
    """
    fmt = SerialFormat.model_validate(raw)
    return fmt, fmt.problems(kind)
