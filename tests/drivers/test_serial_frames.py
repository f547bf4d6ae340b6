"""Frame format, checksums and the streaming scanner, without a port."""

from __future__ import annotations

import binascii
from pathlib import Path

import pytest
from pymodbus.framer.rtu import FramerRTU

from drivers.checksum import crc16_ccitt, crc16_modbus, sum8, xor8
from drivers.profile import BUILTIN, load_profile
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames import Frame, FrameScanner, Rejected, SerialFormat, build_frame
from drivers.serial_frames.datatypes import pack, unpack
from drivers.serial_frames.decode import FrameDecoder
from gateway.core.model import DeviceKind
from gateway.core.problems import ConfigError


def _format(**overrides: object) -> SerialFormat:
    raw: dict[str, object] = {
        "header": "AA 55", "trailer": "0D", "type_offset": 3, "payload_offset": 4,
        "length": {"offset": 2, "counts": "payload"},
        "checksum": {"algorithm": "sum8", "start": 2},
        "frames": [{"type": 1, "name": "ping"}],
        "frame_timeout_s": 0.5, "max_frame_bytes": 32,
    }
    raw.update(overrides)
    return SerialFormat.model_validate(raw)


def test_checksums_match_published_check_values() -> None:
    data = b"123456789"
    assert crc16_modbus(data) == 0x4B37
    assert crc16_ccitt(data) == 0x29B1 == binascii.crc_hqx(data, 0xFFFF)
    assert sum8(b"\xff\x02") == 0x01
    assert xor8(b"\x0f\xf0\x01") == 0xFE


def test_datatypes_round_trip_and_reject_bad_bcd() -> None:
    assert unpack("i16le", pack("i16le", None, -5)) == -5
    assert unpack("u32be", b"\x00\x01\x00\x00") == 65536
    assert unpack("bcd", pack("bcd", 5, "12345678")) == "0012345678"
    assert unpack("ascii", b"AB\x00\x00") == "AB"
    with pytest.raises(ValueError, match="BCD"):
        unpack("bcd", b"\x1a")
    with pytest.raises(ValueError, match="fit"):
        pack("u8", None, 256)


def test_access_frame_matches_an_independent_modbus_crc() -> None:
    fmt = load_profile(BUILTIN / "serial-access-controller.toml").mapping
    assert isinstance(fmt, SerialFormat)
    payload = bytes([3, 1]) + bytes(5) + bytes(16)
    body = bytes([0xAA, 0x55, len(payload), 0x10]) + payload
    wire = body + FramerRTU.compute_CRC(body[2:]).to_bytes(2, "big") + b"\x0d"
    assert build_frame(fmt, 0x10, payload) == wire
    assert FrameScanner(fmt).feed(wire, 0.0) == [Frame(0x10, payload)]


def test_temp_gate_frame_matches_an_independent_ccitt_crc() -> None:
    fmt = load_profile(BUILTIN / "serial-temp-gate.toml").mapping
    assert isinstance(fmt, SerialFormat)
    payload = (366).to_bytes(2, "little") + b"\x00\x01" + (7).to_bytes(4, "little") + bytes(20)
    rest = 1 + len(payload) + 2  # type, payload, CRC
    body = b"\x5a\xa5" + rest.to_bytes(2, "little") + b"\x30" + payload
    wire = body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")
    assert build_frame(fmt, 0x30, payload) == wire
    assert FrameScanner(fmt).feed(wire, 0.0) == [Frame(0x30, payload)]


def test_resynchronises_after_garbage_and_false_headers() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x07")
    scanner = FrameScanner(fmt)
    # a false header whose "frame" fails its checksum, then garbage, then a real frame
    noise = b"\x01\x02" + b"\xaa\x55\x01\x01\x00\x00\x0d" + b"\x33\xaa"
    out = scanner.feed(noise + good + good, 0.0)
    assert [type(o).__name__ for o in out] == ["Rejected", "Rejected", "Rejected", "Frame",
                                               "Frame"]
    assert [o.reason for o in out if isinstance(o, Rejected)] == ["garbage", "bad_checksum",
                                                                  "garbage"]
    assert scanner.dropped == len(noise)
    assert scanner.deadline is None


def test_frames_split_across_chunks_byte_by_byte() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x01\x02\x03")
    scanner = FrameScanner(fmt)
    out = [o for byte in good + good for o in scanner.feed(bytes([byte]), 0.0)]
    assert out == [Frame(1, b"\x01\x02\x03")] * 2


def test_truncated_frame_expires_after_the_timeout() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x01\x02\x03")
    scanner = FrameScanner(fmt)
    assert scanner.feed(good[:5], 10.0) == []
    assert scanner.deadline == 10.5
    assert scanner.expire(10.4) == []
    [rejected] = scanner.expire(10.5)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "truncated"
    assert scanner.deadline is None
    assert scanner.feed(good, 11.0) == [Frame(1, b"\x01\x02\x03")]


def test_a_late_rest_of_frame_is_not_glued_to_its_start() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x01\x02\x03")
    scanner = FrameScanner(fmt)
    scanner.feed(good[:5], 0.0)
    out = scanner.feed(good[5:] + good, 2.0)
    assert [o.reason for o in out if isinstance(o, Rejected)] == ["truncated", "garbage"]
    assert out[-1] == Frame(1, b"\x01\x02\x03")


def test_a_frame_cut_short_by_the_next_one_is_truncated() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x01\x02\x03\x04\x05")
    scanner = FrameScanner(fmt)
    out = scanner.feed(good[:6] + good, 0.0)
    assert out == [Rejected("truncated", "a new frame began inside this one"),
                   Frame(1, b"\x01\x02\x03\x04\x05")]


def test_the_end_of_the_stream_truncates_a_pending_frame() -> None:
    fmt = _format()
    scanner = FrameScanner(fmt)
    scanner.feed(build_frame(fmt, 1, b"\x01")[:4], 0.0)
    [rejected] = scanner.close()
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "truncated"


def test_impossible_length_and_bad_trailer_are_rejected() -> None:
    fmt = _format()
    good = build_frame(fmt, 1, b"\x01")
    scanner = FrameScanner(fmt)
    too_long = b"\xaa\x55\xf0"
    wrong_end = good[:-1] + b"\x0a"
    out = scanner.feed(too_long + wrong_end + good, 0.0)
    reasons = [o.reason for o in out if isinstance(o, Rejected)]
    assert reasons[:2] == ["bad_length", "bad_trailer"]
    assert out[-1] == Frame(1, b"\x01")


def test_length_counting_the_whole_frame() -> None:
    fmt = _format(length={"offset": 2, "counts": "frame"}, trailer=None,
                  checksum={"algorithm": "xor8", "start": 0})
    good = build_frame(fmt, 1, b"\x09\x08")
    assert good[2] == len(good)
    assert FrameScanner(fmt).feed(b"\x00" + good, 0.0)[-1] == Frame(1, b"\x09\x08")


_SERIAL_HEAD = """
name = "{name}"
kind = "{kind}"
transport = "serial"
[serial]
header = "AA 55"
type_offset = 3
payload_offset = 4
[serial.length]
offset = 2
[serial.checksum]
algorithm = "xor8"
[[serial.frames]]
type = 0x10
name = "event"
"""


def _problems(tmp_path: Path, fields: str, kind: str = "access") -> list[str]:
    file = tmp_path / "broken-serial.toml"
    file.write_text(_SERIAL_HEAD.format(name=file.stem, kind=kind) + fields)
    with pytest.raises(ConfigError) as caught:
        load_profile(file)
    return [str(p) for p in caught.value.problems]


def test_a_name_field_cannot_be_mapped_over_its_ignore_range(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
[[serial.frames.fields]]
name = "who"
offset = 2
datatype = "ascii"
size = 8
event_field = "who"
[[serial.frames.ignore]]
name = "holder_name"
offset = 0
size = 16
""")
    assert problems == ["serial.frames[0].fields[0]: overlaps ignore 'holder_name'"]


def test_profile_problems_name_the_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
[[serial.frames.fields]]
name = "temp"
offset = 0
datatype = "u16be"
reading = "body_temp_c"
[[serial.frames.fields]]
name = "code"
offset = 2
datatype = "u8"
map = { "1" = "granted", "2" = "exploded" }
[[serial.frames.fields]]
name = "card"
offset = 3
datatype = "u8"
card = true
[[serial.frames.fields]]
name = "text"
offset = 4
datatype = "ascii"
""")
    assert problems == [
        "serial.frames[0].fields[0].reading: 'body_temp_c' is not a reading of access devices",
        "serial.frames[0].fields[1].map: 'exploded' is not an event of access devices",
        "serial.frames[0].fields[2].datatype: a card number is bcd, ascii, u32be or u32le",
        "serial.frames[0].fields[3].size: ascii fields need a size",
    ]


def test_shape_errors_are_reported_under_the_serial_section(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
[[serial.frames.fields]]
name = "x"
offset = 0
datatype = "u24"
reading = "door_open"
""")
    assert len(problems) == 1
    assert problems[0].startswith("serial.frames[0].fields[0].datatype:")


def test_a_bad_card_nibble_never_shows_the_card_digits() -> None:
    fmt = load_profile(BUILTIN / "serial-access-controller.toml").mapping
    assert isinstance(fmt, SerialFormat)
    decoder = FrameDecoder(fmt, DeviceKind.ACCESS, "door-1", Pseudonymiser(b"k" * 24))
    payload = bytes([1, 2]) + bytes.fromhex("123456789a") + bytes(16)
    decoded = decoder.decode(Frame(0x10, payload), 1)
    (reason, detail), = decoded.problems
    assert reason == "bad_value"
    assert detail.startswith("door_event.card: ")
    assert not any(digits in detail for digits in ("12", "34", "56", "78", "9a"))
