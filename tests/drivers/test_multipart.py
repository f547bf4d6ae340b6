"""The incremental multipart reader: pieces in order however the bytes are cut."""

from __future__ import annotations

import pytest

from drivers.multipart import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartHead,
    Piece,
    boundary_of,
)

# the layout of Dahua's eventManager.cgi attach stream as its HTTP API documents it
DAHUA = (b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 39\r\n\r\n"
         b"Code=VideoMotion;action=Start;index=0\r\n\r\n"
         b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
         b"Heartbeat\r\n\r\n--myboundary\r\n")


def _parts(pieces: list[Piece]) -> list[tuple[dict[str, str], bytes]]:
    parts: list[tuple[dict[str, str], bytes]] = []
    head: dict[str, str] = {}
    body = b""
    for piece in pieces:
        if isinstance(piece, PartHead):
            head, body = piece.headers, b""
        elif isinstance(piece, PartData):
            body += piece.data
        elif isinstance(piece, PartEnd):
            parts.append((head, body))
    return parts


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_dahua_stream_parts_come_out_whole_however_cut(step: int) -> None:
    reader = MultipartReader("myboundary")
    pieces: list[Piece] = []
    for at in range(0, len(DAHUA), step):
        pieces += reader.feed(DAHUA[at:at + step])
    parts = _parts(pieces)
    assert [body.strip() for _, body in parts] == [b"Code=VideoMotion;action=Start;index=0",
                                                   b"Heartbeat"]
    assert parts[0][0]["content-type"] == "text/plain"
    assert not reader.done
    assert not reader.in_part


def test_form_data_names_and_the_closing_delimiter() -> None:
    body = (b"--MIME_boundary\r\nContent-Disposition: form-data; name=\"event_log\"\r\n"
            b"Content-Type: application/json\r\n\r\n{}\r\n--MIME_boundary\r\n"
            b"Content-Disposition: form-data; name=\"Picture\"; filename=\"p.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xd9\r\n--MIME_boundary--\r\n")
    reader = MultipartReader(boundary_of("multipart/form-data; boundary=MIME_boundary"))
    pieces = reader.feed(body)
    heads = [p for p in pieces if isinstance(p, PartHead)]
    assert [(h.name, h.content_type) for h in heads] == [("event_log", "application/json"),
                                                         ("Picture", "image/jpeg")]
    assert reader.done


def test_a_picture_is_never_held_whole() -> None:
    reader = MultipartReader("b")
    reader.feed(b"--b\r\nContent-Type: image/jpeg\r\n\r\n")
    held = max(len(p.data) for p in reader.feed(b"\xff" * 100_000) if isinstance(p, PartData))
    assert held <= 100_000
    assert len(reader._buffer) < 16


@pytest.mark.parametrize(("content_type", "why"), [
    ("application/json", "not multipart"), ("multipart/mixed", "no boundary"),
])
def test_bad_content_types_are_named(content_type: str, why: str) -> None:
    with pytest.raises(MultipartError, match=why):
        boundary_of(content_type)


def test_runaway_heads_and_preambles_are_refused() -> None:
    with pytest.raises(MultipartError, match="part head longer"):
        MultipartReader("b", max_head_bytes=64).feed(b"--b\r\n" + b"X: y\r\n" * 40)
    with pytest.raises(MultipartError, match="no boundary within"):
        MultipartReader("b", max_preamble_bytes=100).feed(b"x" * 200)


def test_a_part_with_its_length_ends_at_its_last_byte() -> None:
    reader = MultipartReader("myboundary")
    pieces = reader.feed(b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
                         b"Heartbeat\r\n")
    assert isinstance(pieces[-1], PartEnd)  # not waiting for the next boundary
    more = reader.feed(b"\r\n--myboundary\r\nContent-Length: 99\r\n\r\nshort\r\n--myboundary\r\n")
    assert _parts(more) == [({"content-length": "99"}, b"short")]
