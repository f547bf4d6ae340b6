"""What the information objects of GB/T 26875.3-2011 are made of: time tags, addresses and
the fixed-length GB 18030 texts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from drivers.gb26875.frame import TimeTag

TIME_LEN: Final = 6
TEXT_LEN: Final = 31  # a component's description
_ADDRESS = re.compile(r"^(\d{1,5})-(\d{1,5})$")


class UnitError(ValueError):
    """Application data that does not match its type's layout; `reason` is a counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, order=True)
class ComponentAddress:
    """A component's 4-byte address: zone (区号, first two bytes) and position (位号, last
    two), each low byte first; written `zone-position`, e.g. `3-017`."""

    zone: int
    position: int

    @classmethod
    def from_int(cls, value: int) -> ComponentAddress:
        return cls(value & 0xFFFF, value >> 16)

    @classmethod
    def parse(cls, text: str) -> ComponentAddress:
        """`3-017` (zone 3, position 17); ValueError otherwise."""
        match = _ADDRESS.match(text)
        if match is None or int(match[1]) > 0xFFFF or int(match[2]) > 0xFFFF:
            raise ValueError(f"component address {text!r} is not zone-position, e.g. 3-017 "
                             "(each 0..65535)")
        return cls(int(match[1]), int(match[2]))

    def to_int(self) -> int:
        return self.zone | self.position << 16

    def __str__(self) -> str:
        return f"{self.zone}-{self.position:03d}"


def decode_text(raw: bytes) -> str:
    """A GB 18030 string padded with NULs or spaces; undecodable bytes become U+FFFD, so that
    a garbled description never costs the alarm it came with."""
    return raw.split(b"\0", 1)[0].decode("gb18030", "replace").rstrip(" ")


def encode_text(text: str, size: int = TEXT_LEN) -> bytes:
    raw = text.encode("gb18030")
    if len(raw) > size:
        raise ValueError(f"{text!r} is {len(raw)} bytes in GB 18030, more than {size}")
    return raw.ljust(size, b"\0")


def encode_varying(text: str) -> bytes:
    """A length byte and the GB 18030 text (configuration descriptions)."""
    raw = text.encode("gb18030")
    if len(raw) > 255:
        raise ValueError(f"{text!r} is {len(raw)} bytes in GB 18030, more than 255")
    return bytes((len(raw),)) + raw


def time_at(data: bytes, at: int) -> TimeTag:
    return TimeTag.from_bytes(data[at:at + TIME_LEN])
