"""Frames out of a TCP byte stream: resynchronise on `@@` after anything that is not one."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.gb26875.frame import (
    HEADER_LEN,
    MAX_DATA,
    OVERHEAD,
    START,
    Frame,
    FrameError,
    data_length,
    decode_frame,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that were not a frame; `header` is set when its control unit could be read
    (a bad checksum), so that the sender can be denied by serial number."""

    reason: str
    detail: str
    header: Frame | None = None


class FrameStream:
    """Feed it what a connection reads; it hands back frames and rejections in order.

    It holds at most one frame's worth of bytes: what cannot start a frame is dropped (and
    counted in `dropped`) as soon as it is seen.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0  # bytes thrown away outside frames

    def feed(self, data: bytes) -> list[Frame | Rejected]:
        self._buffer += data
        out: list[Frame | Rejected] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def close(self) -> list[Frame | Rejected]:
        """The connection ended: a frame still waiting for its bytes is truncated, and the
        bytes after its start are scanned again (its length may have run past the end and
        swallowed whole frames)."""
        out: list[Frame | Rejected] = []
        while self._buffer:
            item = self._next()
            if item is not None:
                out.append(item)
                continue
            waiting = len(self._buffer)
            self._skip_start()
            if START not in self._buffer:  # no frame inside: the rest was this one's
                self.dropped += len(self._buffer)
                self._buffer.clear()
            out.append(Rejected("truncated", f"the connection ended {waiting} byte(s) into "
                                "a frame"))
        return out

    def _next(self) -> Frame | Rejected | None:
        buffer = self._buffer
        start = buffer.find(START)
        if start < 0:
            # keep a last '@': it may be the first half of the next start
            keep = 1 if buffer[-1:] == START[:1] else 0
            garbage = len(buffer) - keep
            if garbage:
                del buffer[:garbage]
                self.dropped += garbage
                return Rejected("bad_start", f"{garbage} byte(s) outside any frame (a frame "
                                "starts with 4040, '@@')")
            return None
        if start:
            del buffer[:start]
            self.dropped += start
            return Rejected("bad_start", f"{start} byte(s) before a frame's start '@@'")
        if len(buffer) < HEADER_LEN:
            return None
        length = data_length(bytes(buffer[:HEADER_LEN]))
        if length > MAX_DATA:
            self._skip_start()
            return Rejected("length_too_large",
                            f"application data length {length}, more than {MAX_DATA}")
        if len(buffer) < OVERHEAD + length:
            return None
        raw = bytes(buffer[:OVERHEAD + length])
        try:
            frame = decode_frame(raw)
        except FrameError as exc:
            if exc.reason == "bad_checksum":
                del buffer[:len(raw)]
                header = decode_frame(_with_checksum(raw))
                return Rejected(exc.reason, exc.detail, header)
            # the length ran into what follows: a frame cut short, or no frame at all
            self._skip_start()
            return Rejected(exc.reason, f"{exc.detail} where the announced length {length} "
                            "ends the frame: the length runs past the frame, or it was cut "
                            "short")
        del buffer[:len(raw)]
        return frame

    def _skip_start(self) -> None:
        del self._buffer[:1]
        self.dropped += 1


def _with_checksum(raw: bytes) -> bytes:
    """`raw` with its checksum corrected: to read the control unit of a frame that failed it."""
    end = len(raw) - 3
    return raw[:end] + bytes((sum(raw[2:end]) & 0xFF,)) + raw[end + 1:]
