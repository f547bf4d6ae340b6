"""Information objects about the building's fire facilities (unit types 1-8, 8.2.1.1-8.2.1.7).

Each object reads itself from the application data at an offset and writes itself back;
the layouts follow the published examples (see tests/drivers/gb26875_fixtures.py): objects
of types 1-4 end with their time tag, types 5-7 carry none, type 8 is the time itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from drivers.gb26875.frame import TimeTag
from drivers.gb26875.objects import (
    TEXT_LEN,
    TIME_LEN,
    ComponentAddress,
    UnitError,
    decode_text,
    encode_text,
    encode_varying,
    time_at,
)

_SYSTEM: Final = struct.Struct("<BBH")  # system type, system address, state
_COMPONENT: Final = struct.Struct("<BBBIH")  # ... component type, address, state
_ANALOG: Final = struct.Struct("<BBBIBh")  # ... component address, analog type, value
_FOUR: Final = struct.Struct("<BBBB")
_CONFIG: Final = struct.Struct("<BBBI")


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """Type 1: a fire facility system's state (SystemState bits)."""

    SIZE: ClassVar[int] = _SYSTEM.size + TIME_LEN
    system_type: int
    system_address: int
    state: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemStatus:
        kind, address, state = _SYSTEM.unpack_from(data, at)
        return cls(kind, address, state, time_at(data, at + _SYSTEM.size))

    def write(self) -> bytes:
        return _SYSTEM.pack(self.system_type, self.system_address, self.state) \
            + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """Type 2: one component's state (ComponentState bits) and its 31-byte description."""

    SIZE: ClassVar[int] = _COMPONENT.size + TEXT_LEN + TIME_LEN
    system_type: int
    system_address: int
    component_type: int
    address: ComponentAddress
    state: int
    description: str
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> ComponentStatus:
        system, address, kind, component, state = _COMPONENT.unpack_from(data, at)
        text = at + _COMPONENT.size
        return cls(system, address, kind, ComponentAddress.from_int(component), state,
                   decode_text(data[text:text + TEXT_LEN]), time_at(data, text + TEXT_LEN))

    def write(self) -> bytes:
        return _COMPONENT.pack(self.system_type, self.system_address, self.component_type,
                               self.address.to_int(), self.state) \
            + encode_text(self.description) + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class ComponentAnalog:
    """Type 3: one analog value of a component (signed; its unit follows `analog_type`)."""

    SIZE: ClassVar[int] = _ANALOG.size + TIME_LEN
    system_type: int
    system_address: int
    component_type: int
    address: ComponentAddress
    analog_type: int
    value: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> ComponentAnalog:
        system, address, kind, component, analog, value = _ANALOG.unpack_from(data, at)
        return cls(system, address, kind, ComponentAddress.from_int(component), analog, value,
                   time_at(data, at + _ANALOG.size))

    def write(self) -> bytes:
        return _ANALOG.pack(self.system_type, self.system_address, self.component_type,
                            self.address.to_int(), self.analog_type, self.value) \
            + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class SystemOperationRecord:
    """Type 4: an operation on a system's panel (SystemOperation bits) and the operator."""

    SIZE: ClassVar[int] = _FOUR.size + TIME_LEN
    system_type: int
    system_address: int
    operation: int
    operator: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemOperationRecord:
        system, address, operation, operator = _FOUR.unpack_from(data, at)
        return cls(system, address, operation, operator, time_at(data, at + _FOUR.size))

    def write(self) -> bytes:
        return _FOUR.pack(self.system_type, self.system_address, self.operation,
                          self.operator) + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class SystemSoftware:
    """Type 5: a system's software version (no time tag)."""

    SIZE: ClassVar[int] = _FOUR.size
    system_type: int
    system_address: int
    major: int
    minor: int

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemSoftware:
        return cls(*_FOUR.unpack_from(data, at))

    def write(self) -> bytes:
        return _FOUR.pack(self.system_type, self.system_address, self.major, self.minor)


@dataclass(frozen=True, slots=True)
class SystemConfiguration:
    """Type 6: a system's configuration, a GB 18030 text of up to 255 bytes (no time tag)."""

    SIZE: ClassVar[None] = None
    system_type: int
    system_address: int
    description: str

    @classmethod
    def span(cls, data: bytes, at: int) -> int:
        """The bytes the object at `at` takes (UnitError if it runs past the data)."""
        if at + 3 > len(data):
            raise UnitError("truncated_unit", "a system configuration ends inside its header")
        return 3 + data[at + 2]

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemConfiguration:
        length = data[at + 2]
        return cls(data[at], data[at + 1], decode_text(data[at + 3:at + 3 + length]))

    def write(self) -> bytes:
        return bytes((self.system_type, self.system_address)) + encode_varying(self.description)


@dataclass(frozen=True, slots=True)
class ComponentConfiguration:
    """Type 7: a component's type, address and description (no time tag)."""

    SIZE: ClassVar[int] = _CONFIG.size + TEXT_LEN
    system_type: int
    system_address: int
    component_type: int
    address: ComponentAddress
    description: str

    @classmethod
    def read(cls, data: bytes, at: int) -> ComponentConfiguration:
        system, address, kind, component = _CONFIG.unpack_from(data, at)
        text = at + _CONFIG.size
        return cls(system, address, kind, ComponentAddress.from_int(component),
                   decode_text(data[text:text + TEXT_LEN]))

    def write(self) -> bytes:
        return _CONFIG.pack(self.system_type, self.system_address, self.component_type,
                            self.address.to_int()) + encode_text(self.description)


@dataclass(frozen=True, slots=True)
class SystemTime:
    """Type 8: a system's clock."""

    SIZE: ClassVar[int] = 2 + TIME_LEN
    system_type: int
    system_address: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> SystemTime:
        return cls(data[at], data[at + 1], time_at(data, at + 2))

    def write(self) -> bytes:
        return bytes((self.system_type, self.system_address)) + self.time.to_bytes()
