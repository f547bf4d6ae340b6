"""Modbus framing facts the driver needs beyond pymodbus: RTU frames and naming a bad answer.

pymodbus discards an RTU answer with a bad CRC, a frame from another unit or a truncated
frame silently and reports only that no answer came. The bytes that did arrive tell which
it was; the driver counts each kind separately.
"""

from __future__ import annotations

from drivers.checksum import crc16_modbus


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    """An RTU frame: unit id, PDU, CRC."""
    body = bytes([unit]) + pdu
    return body + crc16_modbus(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def rtu_answer_length(frame: bytes) -> int | None:
    """Length of a read answer (or exception) starting at frame[0]; None if not yet known."""
    if len(frame) < 2:
        return None
    if frame[1] & 0x80:
        return 5
    if len(frame) < 3:
        return None
    return 3 + frame[2] + 2


def classify_rtu(rx: bytes, unit: int, function: int) -> tuple[str, str]:
    """(reason, detail) for the bytes that arrived instead of a valid answer."""
    if not rx:
        return "timeout", "no answer"
    shown = rx[:32].hex(" ")
    length = rtu_answer_length(rx)
    if rx[0] == unit and len(rx) >= 2 and rx[1] & 0x7F == function:
        if length is None or len(rx) < length:
            return "truncated", f"{len(rx)} of {length or '?'} bytes: {shown}"
        if crc_ok(rx[:length]):
            return "decode", f"a well-formed answer that could not be decoded: {shown}"
        return "crc", f"CRC mismatch: {shown}"
    if length is not None and len(rx) >= length and crc_ok(rx[:length]):
        return "wrong_unit", f"answer from unit {rx[0]} to a request for unit {unit}: {shown}"
    return "garbage", f"{len(rx)} unparseable byte(s): {shown}"


def classify_tcp(rx: bytes, unit: int) -> tuple[str, str]:
    """(reason, detail) for Modbus TCP bytes that arrived instead of a valid answer."""
    if not rx:
        return "timeout", "no answer"
    shown = rx[:32].hex(" ")
    if len(rx) >= 7 and rx[2:4] == b"\0\0":  # MBAP: protocol id 0
        if rx[6] != unit:
            return "wrong_unit", f"answer from unit {rx[6]} to a request for unit {unit}: {shown}"
        length = 6 + int.from_bytes(rx[4:6], "big")
        if len(rx) < length:
            return "truncated", f"{len(rx)} of {length} bytes: {shown}"
        return "decode", f"a well-formed answer that could not be decoded: {shown}"
    if len(rx) < 7:
        return "truncated", f"{len(rx)} bytes, not even a header: {shown}"
    return "garbage", f"{len(rx)} unparseable byte(s): {shown}"
