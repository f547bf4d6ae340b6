"""The GB/T 26875.3-2011 packet: `@@`, a 25-byte control unit, the application data, a
checksum and `##`.

Control unit (every multi-byte number low byte first): business serial number (2), protocol
version (major, user: 2), time tag (6: s, min, h, day, month, year - 2000), source address
(6), destination address (6), application data length (2, at most 1024), command (1). The
checksum is the byte sum, mod 256, of the control unit and the application data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from drivers.checksum import sum8

START: Final = b"@@"
END: Final = b"##"
CONTROL_LEN: Final = 25  # serial number .. command byte
HEADER_LEN: Final = len(START) + CONTROL_LEN
OVERHEAD: Final = HEADER_LEN + 1 + len(END)  # a frame without application data
MAX_DATA: Final = 1024
MAX_FRAME: Final = OVERHEAD + MAX_DATA
ADDRESS_MAX: Final = (1 << 48) - 1


class Command(enum.IntEnum):
    """The control unit's command byte (7-127 reserved, 128-255 the user's own)."""

    CONTROL = 1  # e.g. synchronise the clock
    SEND = 2  # fire alarms and the facilities' states
    CONFIRM = 3
    REQUEST = 4
    RESPONSE = 5
    DENY = 6


class FrameError(ValueError):
    """Bytes that are not a well-formed frame; `reason` is a counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TimeTag:
    """Six bytes as sent: the device's local wall-clock time, year counted from 2000."""

    second: int
    minute: int
    hour: int
    day: int
    month: int
    year: int  # 0..99

    @classmethod
    def from_bytes(cls, raw: bytes) -> TimeTag:
        return cls(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5])

    @classmethod
    def of(cls, moment: datetime) -> TimeTag:
        """`moment` as a time tag; a year outside 2000-2099 (a clock not yet set, as on a Pi
        before NTP) keeps its last two digits, so that an answer can always be sent."""
        return cls(moment.second, moment.minute, moment.hour, moment.day, moment.month,
                   moment.year % 100)

    def to_bytes(self) -> bytes:
        return bytes((self.second, self.minute, self.hour, self.day, self.month, self.year))

    def isoformat(self) -> str | None:
        """`2012-09-26T09:58:02`, or None if the bytes are no valid date and time."""
        try:
            return datetime(2000 + self.year, self.month, self.day, self.hour, self.minute,
                            self.second).isoformat()
        except ValueError:
            return None


ZERO_TIME: Final = TimeTag(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Frame:
    serial: int  # the business serial number: a confirm carries the one it answers
    command: int  # a Command, or a reserved / user-defined value
    source: int
    destination: int
    time: TimeTag = ZERO_TIME
    data: bytes = b""
    version: tuple[int, int] = (1, 1)  # major (1 in this standard), user version

    def encode(self) -> bytes:
        """The frame as sent; ValueError if a field does not fit its bytes."""
        if len(self.data) > MAX_DATA:
            raise ValueError(f"application data of {len(self.data)} bytes, more than "
                             f"{MAX_DATA}")
        control = b"".join((
            self.serial.to_bytes(2, "little"),
            bytes(self.version),
            self.time.to_bytes(),
            self.source.to_bytes(6, "little"),
            self.destination.to_bytes(6, "little"),
            len(self.data).to_bytes(2, "little"),
            bytes((self.command,)),
        ))
        return START + control + self.data + bytes((sum8(control + self.data),)) + END

    def answer(self, command: Command, time: TimeTag, data: bytes = b"") -> Frame:
        """A frame back to this frame's sender, with its serial number (confirm, deny,
        response)."""
        return Frame(serial=self.serial, command=command, source=self.destination,
                     destination=self.source, time=time, data=data, version=self.version)


def data_length(header: bytes) -> int:
    """The application data length announced in the first HEADER_LEN bytes of a frame."""
    return int.from_bytes(header[HEADER_LEN - 3:HEADER_LEN - 1], "little")


def decode_frame(raw: bytes) -> Frame:
    """One whole frame (exactly its bytes) into a Frame, or FrameError naming what is wrong."""
    if len(raw) < OVERHEAD:
        raise FrameError("truncated", f"{len(raw)} bytes, a frame has at least {OVERHEAD}")
    if raw[:2] != START:
        raise FrameError("bad_start", f"starts with {raw[:2].hex()}, not 4040 ('@@')")
    length = data_length(raw)
    if length > MAX_DATA:
        raise FrameError("length_too_large",
                         f"application data length {length}, more than {MAX_DATA}")
    if len(raw) < OVERHEAD + length:
        raise FrameError("length_past_end", f"application data length {length} runs past "
                         f"the end of the {len(raw)}-byte frame")
    if len(raw) > OVERHEAD + length:
        raise FrameError("trailing_bytes", f"{len(raw) - OVERHEAD - length} byte(s) after "
                         f"the {OVERHEAD + length}-byte frame")
    end = HEADER_LEN + length
    if raw[end + 1:end + 3] != END:
        raise FrameError("bad_end", f"ends with {raw[end + 1:end + 3].hex()}, not 2323 ('##')")
    body = raw[2:end]
    if sum8(body) != raw[end]:
        raise FrameError("bad_checksum", f"checksum {raw[end]:02x}, the bytes sum to "
                         f"{sum8(body):02x}")
    return Frame(
        serial=int.from_bytes(raw[2:4], "little"),
        version=(raw[4], raw[5]),
        time=TimeTag.from_bytes(raw[6:12]),
        source=int.from_bytes(raw[12:18], "little"),
        destination=int.from_bytes(raw[18:24], "little"),
        command=raw[26],
        data=bytes(raw[HEADER_LEN:end]),
    )
