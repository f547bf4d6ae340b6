"""Frame checksums: 8-bit sum and xor, CRC-16/MODBUS and CRC-16/CCITT-FALSE."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

Algorithm = Literal["sum8", "xor8", "crc16-modbus", "crc16-ccitt"]


def sum8(data: bytes) -> int:
    """The byte sum modulo 256."""
    return sum(data) & 0xFF


def xor8(data: bytes) -> int:
    """All bytes xor-ed together."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def _reflected_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _msb_first_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_MODBUS = _reflected_table(0xA001)  # 0x8005 reflected
_CCITT = _msb_first_table(0x1021)


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0x8005, initial value 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _MODBUS[(crc ^ byte) & 0xFF]
    return crc


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, not reflected."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CCITT[((crc >> 8) ^ byte) & 0xFF]
    return crc


# algorithm -> (function, width in bytes, byte order on the wire unless the profile says)
ALGORITHMS: Mapping[Algorithm, tuple[Callable[[bytes], int], int, Literal["big", "little"]]] = {
    "sum8": (sum8, 1, "big"),
    "xor8": (xor8, 1, "big"),
    "crc16-modbus": (crc16_modbus, 2, "little"),
    "crc16-ccitt": (crc16_ccitt, 2, "big"),
}
