"""How a point's value is laid out in bits and registers, both ways."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final

from drivers.modbus.register_map import DataType, Point

_FORMAT: Final[dict[DataType, str]] = {"bool": ">H", "uint16": ">H", "int16": ">h",
                                       "uint32": ">I", "int32": ">i", "float32": ">f"}


def decode_point(point: Point, first: int, data: Sequence[int] | Sequence[bool]
                 ) -> bool | int | float:
    """The point's value from `data`, a read that started at address `first`.

    Raises ValueError for a value that is not a number (a float32 NaN or infinity).
    """
    at = point.address - first
    if point.on_bits:
        return bool(data[at])
    raw = unpack_words(point, [int(w) for w in data[at:at + point.width]])
    if point.bit is not None:
        return bool((int(raw) >> point.bit) & 1)
    if point.type == "bool":
        return raw != 0
    if not math.isfinite(raw):
        raise ValueError(f"{point.type} value {raw} is not a number")
    if point.scale == 1.0 and point.offset == 0.0:
        return raw
    return raw * point.scale + point.offset


def unpack_words(point: Point, words: list[int]) -> int | float:
    """The raw number in the point's registers, honouring byte and word order."""
    if point.word_order == "little":
        words = words[::-1]
    data = b"".join(w.to_bytes(2, "big") for w in words)
    if point.byte_order == "little":
        data = _swap_bytes(data)
    value: int | float = struct.unpack(_FORMAT[point.type], data)[0]
    return value


def pack_words(point: Point, raw: int | float) -> list[int]:
    """The registers holding `raw`; struct.error if the datatype cannot hold it."""
    data = struct.pack(_FORMAT[point.type], raw)
    if point.byte_order == "little":
        data = _swap_bytes(data)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if point.word_order == "little" else words


def raw_for(point: Point, value: float) -> int | float:
    """The raw number that decodes to `value` (the inverse of scale and offset)."""
    raw = (value - point.offset) / point.scale
    return raw if point.type == "float32" else round(raw)


def _swap_bytes(data: bytes) -> bytes:
    return b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
