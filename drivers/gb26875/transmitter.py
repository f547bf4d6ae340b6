"""Information objects about the user information transmission device itself (unit types
21-28, 8.2.1.8-8.2.1.11): its state and operations end with a time tag, its software
version and configuration carry none, type 28 is its clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from drivers.gb26875.frame import TimeTag
from drivers.gb26875.objects import TIME_LEN, UnitError, decode_text, encode_varying, time_at


@dataclass(frozen=True, slots=True)
class TransmitterStatus:
    """Type 21: the transmission device's state (TransmitterState bits)."""

    SIZE: ClassVar[int] = 1 + TIME_LEN
    state: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterStatus:
        return cls(data[at], time_at(data, at + 1))

    def write(self) -> bytes:
        return bytes((self.state,)) + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class TransmitterOperationRecord:
    """Type 24: an operation on the transmission device (TransmitterOperation bits)."""

    SIZE: ClassVar[int] = 2 + TIME_LEN
    operation: int
    operator: int
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterOperationRecord:
        return cls(data[at], data[at + 1], time_at(data, at + 2))

    def write(self) -> bytes:
        return bytes((self.operation, self.operator)) + self.time.to_bytes()


@dataclass(frozen=True, slots=True)
class TransmitterSoftware:
    """Type 25: the transmission device's software version."""

    SIZE: ClassVar[int] = 2
    major: int
    minor: int

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterSoftware:
        return cls(data[at], data[at + 1])

    def write(self) -> bytes:
        return bytes((self.major, self.minor))


@dataclass(frozen=True, slots=True)
class TransmitterConfiguration:
    """Type 26: the transmission device's configuration, a GB 18030 text."""

    SIZE: ClassVar[None] = None
    description: str

    @classmethod
    def span(cls, data: bytes, at: int) -> int:
        if at >= len(data):
            raise UnitError("truncated_unit", "a configuration ends before its length byte")
        return 1 + data[at]

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterConfiguration:
        return cls(decode_text(data[at + 1:at + 1 + data[at]]))

    def write(self) -> bytes:
        return encode_varying(self.description)


@dataclass(frozen=True, slots=True)
class TransmitterTime:
    """Type 28: the transmission device's clock."""

    SIZE: ClassVar[int] = TIME_LEN
    time: TimeTag

    @classmethod
    def read(cls, data: bytes, at: int) -> TransmitterTime:
        return cls(time_at(data, at))

    def write(self) -> bytes:
        return self.time.to_bytes()
