"""Field datatypes inside a frame payload: fixed-width integers, packed BCD and ASCII text."""

from __future__ import annotations

from typing import Literal

Datatype = Literal["u8", "u16be", "u16le", "i16be", "i16le", "u32be", "u32le", "bcd", "ascii"]

# integer datatypes: (width in bytes, byte order, signed)
INTEGERS: dict[str, tuple[int, Literal["big", "little"], bool]] = {
    "u8": (1, "big", False),
    "u16be": (2, "big", False),
    "u16le": (2, "little", False),
    "i16be": (2, "big", True),
    "i16le": (2, "little", True),
    "u32be": (4, "big", False),
    "u32le": (4, "little", False),
}
SIZED = frozenset({"bcd", "ascii"})  # datatypes whose width the profile gives


def width(datatype: Datatype, size: int | None) -> int:
    if datatype in INTEGERS:
        return INTEGERS[datatype][0]
    if size is None:
        raise ValueError(f"{datatype} needs a size")
    return size


def unpack(datatype: Datatype, raw: bytes) -> int | str:
    """The value of `raw`: an int for integer types, digits for BCD, text for ASCII.

    Raises ValueError for a BCD nibble above 9 or non-ASCII text.
    """
    if datatype in INTEGERS:
        _, order, signed = INTEGERS[datatype]
        return int.from_bytes(raw, order, signed=signed)
    if datatype == "bcd":
        digits = raw.hex()
        if not digits.isdigit():
            raise ValueError(f"{raw.hex(' ')} is not packed BCD")
        return digits
    text = raw.rstrip(b"\x00 ")
    if not text.isascii():
        raise ValueError(f"{raw.hex(' ')} is not ASCII text")
    return text.decode("ascii")


def pack(datatype: Datatype, size: int | None, value: int | str) -> bytes:
    """The bytes of `value` (the inverse of `unpack`); ValueError if it does not fit."""
    n = width(datatype, size)
    if datatype in INTEGERS:
        _, order, signed = INTEGERS[datatype]
        try:
            return int(value).to_bytes(n, order, signed=signed)
        except OverflowError as exc:
            raise ValueError(f"{value} does not fit {datatype}") from exc
    if datatype == "bcd":
        digits = str(value).rjust(2 * n, "0")
        if not digits.isdigit() or len(digits) > 2 * n:
            raise ValueError(f"{value!r} does not fit {n} bytes of BCD")
        return bytes.fromhex(digits)
    text = str(value).encode("ascii")
    if len(text) > n:
        raise ValueError(f"{value!r} does not fit {n} bytes of ASCII")
    return text.ljust(n, b"\x00")


def as_number(value: int | str) -> int:
    """BCD digits as a number; integers pass through. ValueError for text."""
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    raise ValueError(f"{value!r} is not a number")
