"""One frame's layout: header, length, type, payload, checksum, trailer."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.checksum import ALGORITHMS
from drivers.serial_frames.datatypes import pack, unpack
from drivers.serial_frames.frame_format import SerialFormat


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose length, checksum and trailer were verified."""

    type: int
    payload: bytes


def checksum_bytes(fmt: SerialFormat, frame: bytes, at: int) -> bytes:
    """The checksum of `frame` when the checksum sits at offset `at`."""
    spec = fmt.checksum
    compute, size, _ = ALGORITHMS[spec.algorithm]
    return compute(frame[spec.start:at]).to_bytes(size, spec.order)


def total_length(fmt: SerialFormat, declared: int) -> int:
    """The whole frame's size in bytes for the value of its length field."""
    if fmt.length.counts == "payload":
        return fmt.fixed_bytes + declared
    if fmt.length.counts == "frame":
        return declared
    return fmt.length.offset + fmt.length.size + declared


def declared_length(fmt: SerialFormat, total: int) -> int:
    """The value of the length field for a frame of `total` bytes."""
    if fmt.length.counts == "payload":
        return total - fmt.fixed_bytes
    if fmt.length.counts == "frame":
        return total
    return total - fmt.length.offset - fmt.length.size


def read_length(fmt: SerialFormat, data: bytes | bytearray) -> int:
    """The total frame length announced by a frame starting at data[0] (enough bytes given)."""
    start = fmt.length.offset
    value = unpack(fmt.length.datatype, bytes(data[start:start + fmt.length.size]))
    assert isinstance(value, int)
    return total_length(fmt, value)


def build_frame(fmt: SerialFormat, frame_type: int, payload: bytes) -> bytes:
    """The bytes on the wire for one frame (what a device of this format sends)."""
    total = fmt.fixed_bytes + len(payload)
    out = bytearray(fmt.payload_offset)
    out[:len(fmt.header)] = fmt.header
    out[fmt.type_offset] = frame_type
    field = pack(fmt.length.datatype, None, declared_length(fmt, total))
    out[fmt.length.offset:fmt.length.offset + len(field)] = field
    out += payload
    out += checksum_bytes(fmt, bytes(out), len(out))
    out += fmt.trailer or b""
    return bytes(out)
