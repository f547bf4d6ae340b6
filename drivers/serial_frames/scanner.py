"""Finding frames in a serial byte stream, and resynchronising after anything bad.

The scanner looks for the header, reads the length, and verifies trailer and checksum. A
candidate that fails is rejected and scanning resumes one byte after its header, because a
real frame may begin inside the rejected bytes. Bytes outside any frame are dropped and
reported as garbage. A frame still incomplete `frame_timeout_s` after its header arrived,
or when the stream ends, is truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.serial_frames.frame import Frame, checksum_bytes, read_length
from drivers.serial_frames.frame_format import SerialFormat


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that did not make a frame; `reason` is a short counter label."""

    reason: str
    detail: str


Scanned = Frame | Rejected


class FrameScanner:
    """Turns chunks of bytes into verified frames and rejections; time is passed in."""

    def __init__(self, fmt: SerialFormat) -> None:
        self._fmt = fmt
        self._buf = bytearray()
        self._since: float | None = None  # when the pending bytes began
        self._quiet = 0  # upcoming bytes a rejection already accounts for: not garbage
        self.dropped = 0  # bytes discarded so far

    @property
    def deadline(self) -> float | None:
        """When the pending, incomplete frame counts as truncated; None if nothing is pending."""
        return None if self._since is None else self._since + self._fmt.frame_timeout_s

    def feed(self, data: bytes, now: float) -> list[Scanned]:
        # a gap longer than the timeout inside a frame means the frame is dead
        out = self.expire(now)
        self._buf += data
        self._scan(now, out)
        return out

    def expire(self, now: float) -> list[Scanned]:
        """Reject the pending frame as truncated if its deadline has passed."""
        out: list[Scanned] = []
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            out.append(Rejected("truncated", f"only {len(self._buf)} bytes of a frame arrived "
                                f"within {self._fmt.frame_timeout_s} s"))
            self._quiet = len(self._buf)
            self._discard(1, out)
            self._scan(now, out)
        return out

    def close(self) -> list[Scanned]:
        """The stream ended: whatever is pending is a truncated frame."""
        out: list[Scanned] = []
        if self._buf:
            out.append(Rejected("truncated", f"the stream ended {len(self._buf)} bytes into "
                                "a frame"))
            self._quiet = len(self._buf)
            self._discard(len(self._buf), out)
        self._since = None
        self._quiet = 0
        return out

    def _scan(self, now: float, out: list[Scanned]) -> None:
        header = self._fmt.header
        while self._buf:
            pos = self._buf.find(header)
            if pos < 0:
                self._discard(len(self._buf) - _header_prefix(self._buf, header), out)
                break
            if pos > 0:
                self._discard(pos, out)
                self._since = None
            outcome, span = self._verify(0)
            if outcome is None:
                break
            self._since = None
            if isinstance(outcome, Frame):
                out.append(outcome)
                del self._buf[:span]
                self._quiet = 0
                continue
            if outcome.reason != "bad_length" and self._interrupted(span):
                outcome = Rejected("truncated", "a new frame began inside this one")
            out.append(outcome)
            self._quiet = max(self._quiet, span)
            self._discard(1, out)
        if not self._buf:
            self._since = None
        elif self._since is None:
            self._since = now

    def _verify(self, at: int) -> tuple[Scanned | None, int]:
        """The frame starting at `at` and its size; None while it is incomplete."""
        fmt = self._fmt
        need = fmt.length.offset + fmt.length.size
        if len(self._buf) - at < need:
            return None, 0
        total = read_length(fmt, self._buf[at:at + need])
        if not fmt.fixed_bytes <= total <= fmt.max_frame_bytes:
            return Rejected("bad_length", f"the length field announces {total} bytes; frames "
                            f"have {fmt.fixed_bytes} to {fmt.max_frame_bytes}"), need
        if len(self._buf) - at < total:
            return None, total
        frame = bytes(self._buf[at:at + total])
        end = total - len(fmt.trailer or b"")
        if fmt.trailer and frame[end:] != fmt.trailer:
            return Rejected("bad_trailer", f"ends in {frame[end:].hex(' ')}, not "
                            f"{fmt.trailer.hex(' ')}"), total
        at_checksum = end - fmt.checksum.size
        expected = checksum_bytes(fmt, frame, at_checksum)
        if frame[at_checksum:end] != expected:
            return Rejected("bad_checksum", f"{fmt.checksum.algorithm} is "
                            f"{frame[at_checksum:end].hex(' ')}, expected "
                            f"{expected.hex(' ')}"), total
        return Frame(frame[fmt.type_offset], frame[fmt.payload_offset:at_checksum]), total

    def _interrupted(self, span: int) -> bool:
        """Whether a frame (complete or still arriving) begins inside the rejected span."""
        pos = self._buf.find(self._fmt.header, 1, span)
        return pos > 0 and not isinstance(self._verify(pos)[0], Rejected)

    def _discard(self, n: int, out: list[Scanned]) -> None:
        if n <= 0:
            return
        accounted = min(n, self._quiet)
        self._quiet -= accounted
        del self._buf[:n]
        self.dropped += n
        if n > accounted:
            out.append(Rejected("garbage", f"{n - accounted} bytes outside any frame"))


def _header_prefix(buf: bytearray, header: bytes) -> int:
    """How many bytes at the end of `buf` may be the start of a header."""
    for keep in range(min(len(header) - 1, len(buf)), 0, -1):
        if buf.endswith(header[:keep]):
            return keep
    return 0
