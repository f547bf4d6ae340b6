"""The [modbus] section of a profile: a device's register map as data.

Each named point says where a value lives (function, address, datatype, byte and word
order, an optional bit of a register), how to scale it, how often to poll it (`fast`
points are alarm points, polled at the device's alarm_poll_s), and what it feeds: a
reading of the kind's model, events on the edges of a flag (`on_set` / `on_clear`), or
events from an enumeration (`map` of integer values to event names).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.kinds import MODELS
from gateway.core.model import DeviceKind

Function = Literal["coils", "discrete_inputs", "holding_registers", "input_registers"]
DataType = Literal["bool", "uint16", "int16", "uint32", "int32", "float32"]
Order = Literal["big", "little"]

BIT_FUNCTIONS: Final = frozenset({"coils", "discrete_inputs"})
# Modbus limits for one read request (application protocol spec, 6.1-6.4)
MAX_BITS: Final = 2000
MAX_REGISTERS: Final = 125
# registers a value occupies
WIDTH: Final = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}

_POINT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    """One value in a device's address space and what it feeds."""

    function: Function
    address: int = Field(ge=0, le=65535)
    # bits or registers the point spans; defaults to the datatype's width. A larger span
    # covers a reserved area some devices insist on being read whole; the value is taken
    # from its start.
    count: int | None = Field(default=None, ge=1, le=MAX_BITS)
    datatype: DataType | None = None  # default: bool for bits, uint16 for registers
    byte_order: Order = "big"  # of the two bytes within each register
    word_order: Order = "big"  # of the registers of a 32-bit value
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = Field(default=None, ge=0, le=31)  # one bit of the register value
    fast: bool = False
    reading: str | None = None
    on_set: str | None = None
    on_clear: str | None = None
    map: dict[str, str] = Field(default_factory=dict)

    @property
    def on_bits(self) -> bool:
        return self.function in BIT_FUNCTIONS

    @property
    def type(self) -> DataType:
        if self.datatype is not None:
            return self.datatype
        return "bool" if self.on_bits else "uint16"

    @property
    def width(self) -> int:
        return 1 if self.on_bits else WIDTH[self.type]

    @property
    def span(self) -> int:
        return self.count if self.count is not None else self.width

    @property
    def is_flag(self) -> bool:
        """The point's value is a bool: a bit input, a coil, a register bit or a bool register."""
        return self.on_bits or self.bit is not None or self.type == "bool"

    @property
    def events_by_value(self) -> dict[int, str]:
        """`map` with integer keys (keys that are not integers are reported by `problems`)."""
        out = {}
        for key, event in self.map.items():
            try:
                out[int(key, 0)] = event
            except ValueError:
                continue
        return out


class ModbusMap(_Strict):
    """A device's register map; `problems(kind)` checks it against the kind's model."""

    # some devices accept fewer values per request than the protocol allows
    max_registers: int = Field(default=MAX_REGISTERS, ge=1, le=MAX_REGISTERS)
    max_bits: int = Field(default=MAX_BITS, ge=1, le=MAX_BITS)
    points: dict[str, Point] = Field(min_length=1)

    def problems(self, kind: DeviceKind) -> list[tuple[str, str]]:
        """(key path, message) for every inconsistency and every name the model lacks."""
        out: list[tuple[str, str]] = []
        fed_by: dict[str, str] = {}
        for name, point in self.points.items():
            out += [(f"points.{name}{key}", msg) for key, msg in self._point_problems(point)]
            if not _POINT_NAME.match(name):
                out.append((f"points.{name}", "point names are lower case: [a-z][a-z0-9_]*"))
            out += _name_problems(name, point, kind)
            if point.reading is not None:
                other = fed_by.setdefault(point.reading, name)
                if other != name:
                    out.append((f"points.{name}.reading",
                                f"{point.reading!r} is already fed by point {other}"))
        return out

    def _point_problems(self, p: Point) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if p.on_bits:
            if p.datatype not in (None, "bool"):
                out.append((".datatype", f"{p.function} are single bits: datatype is bool"))
            for key, value, default in (("bit", p.bit, None), ("byte_order", p.byte_order, "big"),
                                        ("word_order", p.word_order, "big")):
                if value != default:
                    out.append((f".{key}", f"{key} applies to registers, not {p.function}"))
        elif p.bit is not None:
            if p.type in ("bool", "float32"):
                out.append((".bit", f"a bit cannot be taken from a {p.type} value"))
            elif p.bit >= 16 * WIDTH[p.type]:
                out.append((".bit", f"a {p.type} has bits 0..{16 * WIDTH[p.type] - 1}"))
        limit = self.max_bits if p.on_bits else self.max_registers
        if p.span < p.width:
            out.append((".count", f"a {p.type} value takes {p.width} register(s)"))
        if p.span > limit:
            out.append((".count", f"at most {limit} per request"))
        if p.address + p.span > 65536:
            out.append((".address", "the point runs past address 65535"))
        if p.is_flag and (p.scale != 1.0 or p.offset != 0.0):
            out.append((".scale", "a flag is 0 or 1: scale and offset do not apply"))
        if p.scale == 0:
            out.append((".scale", "must not be 0"))
        if (p.on_set is not None or p.on_clear is not None) and not p.is_flag:
            out.append((".on_set", "edge events need a flag: a bit, a coil or a bool"))
        if p.map:
            if p.is_flag or p.type == "float32":
                out.append((".map", "an enumeration needs an integer value"))
            if p.scale != 1.0 or p.offset != 0.0:
                out.append((".map", "an enumeration maps the device's raw values: no scale"))
            for key in p.map:
                if not _is_int(key):
                    out.append((f".map.{key}", "keys are the device's integer values"))
        if p.reading is None and p.on_set is None and p.on_clear is None and not p.map:
            out.append(("", "feeds nothing: give reading, on_set/on_clear or map"))
        return out


def _name_problems(name: str, point: Point, kind: DeviceKind) -> list[tuple[str, str]]:
    model = MODELS[kind]
    out = []
    if point.reading is not None and point.reading not in model.readings:
        out.append((f"points.{name}.reading", f"{point.reading!r} is not a reading of {kind} "
                    f"devices (known: {', '.join(sorted(model.readings))})"))
    named = [("on_set", point.on_set), ("on_clear", point.on_clear)]
    named += [(f"map.{key}", event) for key, event in point.map.items()]
    for key, event in named:
        if event is not None and event not in model.events:
            out.append((f"points.{name}.{key}", f"{event!r} is not an event of {kind} devices"))
    return out


def _is_int(text: str) -> bool:
    try:
        int(text, 0)
    except ValueError:
        return False
    return True


def parse_modbus_map(raw: dict[str, Any], kind: DeviceKind
                     ) -> tuple[ModbusMap, list[tuple[str, str]]]:
    """The profile parser for transport "modbus": the validated map and its problems."""
    mapping = ModbusMap.model_validate(raw)
    return mapping, mapping.problems(kind)
