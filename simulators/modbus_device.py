"""A simulated Modbus device built from a profile's register map: no per-device code.

It holds the device's bits and registers (a pymodbus device context), sets them from
engineering values (`set_reading`, `raise_alarm`, ...) and misbehaves on request (`fail`).
The buses in simulators/modbus_rtu.py and simulators/modbus_tcp.py put devices on a line.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock
from pymodbus.exceptions import NoSuchIdException

from drivers.checksum import crc16_modbus
from drivers.modbus.register_map import ModbusMap, Point
from drivers.modbus.values import pack_words, raw_for, unpack_words
from drivers.profile import Profile
from gateway.core.kinds import MODELS

_CODE = {"coils": 1, "discrete_inputs": 2, "holding_registers": 3, "input_registers": 4}

Framing = Literal["rtu", "tcp"]


class Fault(enum.StrEnum):
    """How a unit misbehaves until healed."""

    NO_ANSWER = "no_answer"  # dead, unpowered or disconnected from the line
    SLOW = "slow"  # answers after `delay_s`
    EXCEPTION = "exception"  # answers every read with an exception (device busy)
    CRC = "crc"  # corrupts the CRC of its answers (RTU)
    GARBAGE = "garbage"  # answers with bytes that are no frame
    TRUNCATED = "truncated"  # stops halfway through its answers
    WRONG_UNIT = "wrong_unit"  # answers under another unit id


@dataclass(frozen=True, slots=True)
class Request:
    """A read the unit received: when (event-loop time), what, where, how many."""

    at: float
    function: int
    address: int
    count: int


class SimulatedDevice(ModbusDeviceContext):
    """One unit whose address space is laid out by `profile`'s [modbus] section."""

    def __init__(self, unit: int, profile: Profile) -> None:
        if not isinstance(profile.mapping, ModbusMap):
            raise ValueError(f"profile {profile.name} is not a modbus profile")
        self.unit = unit
        self.profile = profile
        self.register_map: ModbusMap = profile.mapping
        top: dict[str, int] = dict.fromkeys(_CODE, 1)
        for point in self.register_map.points.values():
            top[point.function] = max(top[point.function], point.address + point.span)
        # pymodbus' device context adds 1 to every address: the blocks start at 1. Reads
        # past the last point are answered with "illegal data address", as devices do.
        super().__init__(co=_cells(top["coils"], False), di=_cells(top["discrete_inputs"], False),
                         hr=_cells(top["holding_registers"], 0),
                         ir=_cells(top["input_registers"], 0))
        self.requests: list[Request] = []
        self.fault: Fault | None = None
        self.delay_s = 0.0
        specs = MODELS[profile.kind].readings
        for name, point in self.register_map.points.items():
            if point.reading is not None and not point.is_flag:
                # zero where the reading allows it, else (a body temperature) mid-range
                spec = specs[point.reading]
                bounds = [b for b in (spec.low, spec.high) if b is not None]
                self.set_value(name, 0 if spec.accepts(0) else sum(bounds) / len(bounds))

    # -- values -----------------------------------------------------------------------

    def set_value(self, point: str, value: bool | float) -> None:
        """Set a point to an engineering value (scaled like the device would)."""
        p = self._point(point)
        if p.is_flag:
            self._set_flag(p, bool(value))
        else:
            self.set_raw(point, raw_for(p, float(value)))

    def set_raw(self, point: str, raw: int | float) -> None:
        """Set the raw number in a point's registers, unscaled; ValueError if it cannot hold it."""
        p = self._point(point)
        if p.is_flag:
            raise ValueError(f"point {point} is a flag: use set_value")
        try:
            words = pack_words(p, raw)
        except struct.error as exc:
            raise ValueError(f"{raw} does not fit the {p.type} of point {point}") from exc
        self.setValues(_CODE[p.function], p.address, words)

    def set_reading(self, reading: str, value: bool | float) -> None:
        """Set the point that feeds `reading`."""
        self.set_value(self._feeding(reading), value)

    def raise_alarm(self, point: str) -> None:
        self.set_value(point, True)

    def clear_alarm(self, point: str) -> None:
        self.set_value(point, False)

    def set_state(self, point: str, event: str) -> None:
        """Set an enumeration point to the value its map turns into `event`."""
        p = self._point(point)
        for value, name in p.events_by_value.items():
            if name == event:
                self.set_raw(point, value)
                return
        raise ValueError(f"point {point} has no value for event {event!r}")

    def out_of_range(self, reading: str) -> float:
        """Put a value just outside the reading's range; returns it."""
        point = self._feeding(reading)
        spec = MODELS[self.profile.kind].readings[reading]
        p = self._point(point)
        step = abs(p.scale)
        candidates = ([spec.high + step] if spec.high is not None else []) + (
            [spec.low - step] if spec.low is not None else [])
        for value in candidates:
            try:
                self.set_value(point, value)
            except ValueError:
                continue
            return value
        raise ValueError(f"{reading} cannot be put out of range by point {point}")

    def value(self, point: str) -> list[int] | list[bool]:
        """The raw bits or registers the point spans."""
        p = self._point(point)
        got = self.getValues(_CODE[p.function], p.address, p.span)
        assert isinstance(got, list)
        return got

    # -- faults -----------------------------------------------------------------------

    def fail(self, fault: Fault, delay_s: float = 0.0) -> None:
        """Misbehave from now on; `delay_s` is how slow a SLOW unit answers."""
        self.fault = fault
        self.delay_s = delay_s

    def heal(self) -> None:
        self.fault = None
        self.delay_s = 0.0

    def mangle(self, adu: bytes, framing: Framing) -> bytes:
        """The answer as this unit puts it on the wire, faults included."""
        if self.fault is Fault.CRC:
            if framing == "tcp":
                raise ValueError("Modbus TCP frames carry no CRC")
            return adu[:-2] + bytes([adu[-2] ^ 0x5A, adu[-1] ^ 0xA5])
        if self.fault is Fault.GARBAGE:
            # starts with neither this unit's id nor an MBAP protocol id of 0
            junk = bytes((self.unit ^ 0x80, 0xDE, 0xAD, 0xBE, 0xEF, 0x13, 0x37, 0x42))
            return (junk * (len(adu) // len(junk) + 1))[:max(len(adu), len(junk))]
        if self.fault is Fault.TRUNCATED:
            return adu[:len(adu) // 2]
        if self.fault is Fault.WRONG_UNIT:
            other = self.unit % 247 + 1
            if framing == "tcp":
                return adu[:6] + bytes([other]) + adu[7:]
            body = bytes([other]) + adu[1:-2]
            return body + crc16_modbus(body).to_bytes(2, "little")
        return adu

    # -- pymodbus datastore -------------------------------------------------------------

    async def async_getValues(self, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        self.requests.append(Request(asyncio.get_running_loop().time(), func_code, address,
                                     count))
        if self.fault is Fault.NO_ANSWER:
            # pymodbus' TCP server stays silent for a missing unit; so does the RTU line
            raise NoSuchIdException(f"unit {self.unit} is silent")  # type: ignore[no-untyped-call]
        if self.fault is Fault.EXCEPTION:
            return ExcCodes.DEVICE_BUSY
        if self.fault is Fault.SLOW:
            await asyncio.sleep(self.delay_s)
        return self.getValues(func_code, address, count)

    # -- helpers ------------------------------------------------------------------------

    def _point(self, name: str) -> Point:
        try:
            return self.register_map.points[name]
        except KeyError:
            raise KeyError(f"profile {self.profile.name} has no point {name!r}") from None

    def _feeding(self, reading: str) -> str:
        for name, point in self.register_map.points.items():
            if point.reading == reading:
                return name
        raise KeyError(f"no point of profile {self.profile.name} feeds {reading!r}")

    def _set_flag(self, p: Point, on: bool) -> None:
        code = _CODE[p.function]
        if p.on_bits:
            self.setValues(code, p.address, [on])
            return
        if p.bit is None:  # a bool register
            self.setValues(code, p.address, pack_words(p, int(on)))
            return
        words = self.getValues(code, p.address, p.width)
        assert isinstance(words, list)
        raw = int(unpack_words(p, [int(w) for w in words]))
        raw = raw | (1 << p.bit) if on else raw & ~(1 << p.bit)
        self.setValues(code, p.address, pack_words(p, raw))


def _cells(size: int, zero: bool | int) -> ModbusSequentialDataBlock:
    return ModbusSequentialDataBlock(1, [zero] * size)  # type: ignore[no-untyped-call]
