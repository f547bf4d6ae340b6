"""An incremental multipart reader: bytes in, parts out, memory bounded.

Both makers' terminals speak multipart: a Hikvision push is `multipart/form-data` with an
event part and JPEG parts; a Dahua event stream is an endless `multipart/x-mixed-replace`.
The reader is fed whatever the socket gave and hands back, in order, the head of each part
(`PartHead`), its body in pieces (`PartData`) and its end (`PartEnd`); what it keeps
between feeds is at most a part head and the length of a delimiter. So a caller can keep
an event part and let a picture go by without ever holding it.

A part whose head gives its `Content-Length` ends after that many bytes (or at a delimiter
met before): an event is handed over as soon as its last byte arrives, not when the next
part begins (on an event stream, a heartbeat later). What follows it up to the next
boundary (the CRLF of the layout) is skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MultipartError(ValueError):
    """The bytes are not the multipart body they claim to be."""


@dataclass(frozen=True, slots=True)
class PartHead:
    headers: dict[str, str]  # lower-case names

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def name(self) -> str:
        """The form field name of a form-data part ("" if none)."""
        disposition = self.headers.get("content-disposition", "")
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            if key.lower() == "name":
                return value.strip().strip('"')
        return ""


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    pass


Piece = PartHead | PartData | PartEnd


class _State(enum.Enum):
    PREAMBLE = 1
    AFTER_BOUNDARY = 2
    HEADERS = 3
    BODY = 4
    DONE = 5


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type; MultipartError if none."""
    media, _, params = content_type.partition(";")
    if not media.strip().lower().startswith("multipart/"):
        raise MultipartError(f"not multipart: {media.strip()[:60]!r}")
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 70:
                return value
            raise MultipartError("a boundary must be 1 to 70 characters")
    raise MultipartError("no boundary in the Content-Type")


class MultipartReader:
    """Feed bytes, get pieces. `done` once the closing delimiter arrived."""

    def __init__(self, boundary: str, *, max_head_bytes: int = 4096,
                 max_preamble_bytes: int = 4096) -> None:
        self._dash = b"--" + boundary.encode("latin-1")
        self._delimiter = b"\r\n" + self._dash
        self._max_head = max_head_bytes
        self._max_preamble = max_preamble_bytes
        self._buffer = bytearray()
        self._state = _State.PREAMBLE
        self._skipped = 0
        self._remaining: int | None = None  # of a part with a Content-Length

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def in_part(self) -> bool:
        """A part has begun and not ended."""
        return self._state is _State.BODY

    def feed(self, data: bytes) -> list[Piece]:
        if self._state is _State.DONE:
            return []  # an epilogue is ignored, as RFC 2046 says
        self._buffer += data
        pieces: list[Piece] = []
        while self._step(pieces):
            pass
        return pieces

    def _step(self, pieces: list[Piece]) -> bool:
        """One transition; False when more bytes are needed."""
        buf = self._buffer
        if self._state is _State.PREAMBLE:
            at = buf.find(self._dash)
            if at < 0:
                keep = len(self._dash) - 1
                if len(buf) > keep:
                    self._skipped += len(buf) - keep
                    del buf[:len(buf) - keep]
                if self._skipped > self._max_preamble:
                    raise MultipartError(f"no boundary within {self._max_preamble} bytes")
                return False
            del buf[:at + len(self._dash)]
            self._state = _State.AFTER_BOUNDARY
            return True
        if self._state is _State.AFTER_BOUNDARY:
            # "--" closes the body; else optional transport padding, then CRLF
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = _State.DONE
                del buf[:]
                return False
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > 80:
                    raise MultipartError("no line end after a boundary")
                return False
            if buf[:end].strip(b" \t\r"):
                raise MultipartError("text after a boundary on its line")
            del buf[:end + 1]
            self._state = _State.HEADERS
            return True
        if self._state is _State.HEADERS:
            end, skip = _blank_line(buf)
            if end < 0:
                if len(buf) > self._max_head:
                    raise MultipartError(f"part head longer than {self._max_head} bytes")
                return False
            if end > self._max_head:
                raise MultipartError(f"part head longer than {self._max_head} bytes")
            head = _headers(bytes(buf[:end]))
            del buf[:end + skip]
            pieces.append(PartHead(head))
            length = head.get("content-length", "")
            # isdigit alone takes "²" and other digits int() refuses
            self._remaining = (int(length) if length.isascii() and length.isdigit()
                               and len(length) < 12 else None)
            self._state = _State.BODY
            return True
        if self._state is _State.BODY and self._remaining is not None:
            take = min(len(buf), self._remaining)
            at = buf.find(self._delimiter, 0, take)
            if at >= 0:  # the length was too long: the delimiter ends the part
                if at:
                    pieces.append(PartData(bytes(buf[:at])))
                del buf[:at + len(self._delimiter)]
                self._remaining = None
                pieces.append(PartEnd())
                self._state = _State.AFTER_BOUNDARY
                return True
            if take:
                pieces.append(PartData(bytes(buf[:take])))
                del buf[:take]
                self._remaining -= take
            if self._remaining:
                return False
            self._remaining = None
            pieces.append(PartEnd())
            self._state = _State.PREAMBLE  # skip to the next boundary
            self._skipped = 0
            return True
        if self._state is _State.BODY:
            at = buf.find(self._delimiter)
            if at < 0:
                # everything but a possible start of the delimiter is body
                keep = len(self._delimiter) - 1
                if len(buf) > keep:
                    pieces.append(PartData(bytes(buf[:len(buf) - keep])))
                    del buf[:len(buf) - keep]
                return False
            if at:
                pieces.append(PartData(bytes(buf[:at])))
            del buf[:at + len(self._delimiter)]
            pieces.append(PartEnd())
            self._state = _State.AFTER_BOUNDARY
            return True
        return False


def _blank_line(buf: bytearray) -> tuple[int, int]:
    """Where the head ends (an empty line, CRLF or LF alone) and the length of its mark."""
    if buf[:2] == b"\r\n":
        return 0, 2
    if buf[:1] == b"\n":
        return 0, 1
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MultipartError(f"not a header line: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
