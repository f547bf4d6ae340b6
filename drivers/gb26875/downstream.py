"""Information objects the monitoring centre sends (unit types 61-91, 8.3.2): what to read,
and the control commands (initialise, synchronise the clock, check the duty officer).

The published examples carry the time to set in a clock synchronisation (type 90) and the
minutes the duty officer has to answer in a check (type 91); the other reads of the
transmission device carry one reserved byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from drivers.gb26875.frame import TimeTag
from drivers.gb26875.objects import TIME_LEN, ComponentAddress, time_at

_COMPONENT: Final = struct.Struct("<BBI")


@dataclass(frozen=True, slots=True)
class SystemQuery:
    """Types 61, 65, 66, 68: which system to read."""

    SIZE: ClassVar[int] = 2
    system_type: int
    system_address: int

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemQuery:
        return cls(data[at], data[at + 1])

    def write(self) -> bytes:
        return bytes((self.system_type, self.system_address))


@dataclass(frozen=True, slots=True)
class ComponentQuery:
    """Types 62, 63, 67: which component to read."""

    SIZE: ClassVar[int] = _COMPONENT.size
    system_type: int
    system_address: int
    address: ComponentAddress

    @classmethod
    def read(cls, data: bytes, at: int) -> ComponentQuery:
        system, address, component = _COMPONENT.unpack_from(data, at)
        return cls(system, address, ComponentAddress.from_int(component))

    def write(self) -> bytes:
        return _COMPONENT.pack(self.system_type, self.system_address, self.address.to_int())


@dataclass(frozen=True, slots=True)
class SystemRecordsQuery:
    """Type 64: a system's operation records, `count` of them from `since`."""

    SIZE: ClassVar[int] = 3 + TIME_LEN
    system_type: int
    system_address: int
    count: int
    since: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemRecordsQuery:
        return cls(data[at], data[at + 1], data[at + 2], time_at(data, at + 3))

    def write(self) -> bytes:
        return bytes((self.system_type, self.system_address, self.count)) \
            + self.since.to_bytes()


@dataclass(frozen=True, slots=True)
class TransmitterQuery:
    """Types 81, 85, 86, 88, 89: a read of (or, 89, an initialisation of) the transmission
    device; one reserved byte."""

    SIZE: ClassVar[int] = 1
    reserved: int = 0

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterQuery:
        return cls(data[at])

    def write(self) -> bytes:
        return bytes((self.reserved,))


@dataclass(frozen=True, slots=True)
class TransmitterRecordsQuery:
    """Type 84: the transmission device's operation records, `count` of them from `since`."""

    SIZE: ClassVar[int] = 1 + TIME_LEN
    count: int
    since: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterRecordsQuery:
        return cls(data[at], time_at(data, at + 1))

    def write(self) -> bytes:
        return bytes((self.count,)) + self.since.to_bytes()


@dataclass(frozen=True, slots=True)
class ClockSync:
    """Type 90: set the transmission device's clock to `time`."""

    SIZE: ClassVar[int] = TIME_LEN
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> ClockSync:
        return cls(time_at(data, at))

    def write(self) -> bytes:
        return self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class DutyCheck:
    """Type 91: the duty officer must answer at the device within `minutes`."""

    SIZE: ClassVar[int] = 1
    minutes: int

    @classmethod
    def read(cls, data: bytes, at: int) -> DutyCheck:
        return cls(data[at])

    def write(self) -> bytes:
        return bytes((self.minutes,))
