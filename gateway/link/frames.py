"""Where one MQTT packet ends in a stream of bytes: the fixed header's remaining length.

The packets themselves are read and written by `mqtt5` (a sans-I/O MQTT 5 codec); this
finds their boundaries, so the codec only ever sees whole packets, and a packet larger than
the connection takes is refused from its header, before its bytes are held.
"""

from __future__ import annotations

MAX_LENGTH_BYTES = 4  # the remaining length is a variable byte integer of 1-4 bytes


class MalformedPacketError(Exception):
    """The broker's stream is not MQTT: the connection cannot be read any further."""


def packet_bounds(buffer: bytes | bytearray | memoryview, start: int, end: int
                  ) -> tuple[int, int] | None:
    """(the fixed header's size, the packet's size) of the packet at `buffer[start:end]`.

    None while its fixed header is not complete yet (the packet itself may be longer than
    what `end` holds: the caller compares). Raises MalformedPacketError for a remaining
    length of more than four bytes.
    """
    position = start + 1
    length = 0
    shift = 0
    while True:
        if position >= end:
            return None
        byte = buffer[position]
        position += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return position - start, position - start + length
        shift += 7
        if shift >= 7 * MAX_LENGTH_BYTES:
            raise MalformedPacketError("a remaining length of more than four bytes")
