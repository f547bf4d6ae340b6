"""The [modbus] profile schema: shipped profiles load, mistakes are named by key path,
and values are laid out in registers as devices do."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from drivers.checksum import crc16_modbus
from drivers.modbus import ModbusMap, Point
from drivers.modbus.frames import classify_rtu, classify_tcp, rtu_frame
from drivers.modbus.values import decode_point, pack_words, raw_for
from drivers.profile import ProfileLibrary, load_profile
from gateway.core.problems import ConfigError

SHIPPED = ["modbus-door-io", "modbus-manhole-monitor", "modbus-smoke-detector",
           "modbus-temp-gate"]


def test_every_shipped_modbus_profile_loads() -> None:
    library = ProfileLibrary()
    names = [n for n in library.names() if library.get(n).transport == "modbus"]
    assert names == SHIPPED
    for name in names:
        assert isinstance(library.get(name).mapping, ModbusMap)


def _profile(tmp_path: Path, body: str, kind: str = "smoke") -> Path:
    file = tmp_path / "bad-modbus.toml"
    file.write_text(f'name = "bad-modbus"\nkind = "{kind}"\ntransport = "modbus"\n'
                    f"[modbus]\n{body}", encoding="utf-8")
    return file


def _problems(tmp_path: Path, body: str, kind: str = "smoke") -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_profile(_profile(tmp_path, body, kind))
    return {p.path: p.message for p in caught.value.problems}


def test_names_are_checked_against_the_kinds_model(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
[modbus.points.level]
function = "input_registers"
address = 0
reading = "water_level_cm"
[modbus.points.alarm]
function = "discrete_inputs"
address = 0
on_set = "smoke_alarm"
[modbus.points.state]
function = "holding_registers"
address = 3
map = { "0" = "alarm_cleared", "1" = "burning" }
""")
    assert "not a reading of smoke devices" in problems["modbus.points.level.reading"]
    assert "not an event of smoke devices" in problems["modbus.points.alarm.on_set"]
    assert "not an event of smoke devices" in problems["modbus.points.state.map.1"]
    assert len(problems) == 3


def test_inconsistent_points_are_named(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
max_registers = 16
[modbus.points.a]
function = "coils"
address = 0
datatype = "uint16"
bit = 3
on_set = "alarm"
[modbus.points.b]
function = "input_registers"
address = 0
datatype = "float32"
bit = 2
reading = "smoke_ppm"
[modbus.points.c]
function = "input_registers"
address = 10
datatype = "uint32"
count = 1
on_set = "alarm"
[modbus.points.d]
function = "input_registers"
address = 20
count = 17
reading = "battery_pct"
[modbus.points.e]
function = "holding_registers"
address = 0
[modbus.points.f]
function = "holding_registers"
address = 1
reading = "battery_pct"
[modbus.points.g]
function = "holding_registers"
address = 2
map = { "low" = "alarm" }
""")
    assert "datatype is bool" in problems["modbus.points.a.datatype"]
    assert "registers, not coils" in problems["modbus.points.a.bit"]
    assert "float32" in problems["modbus.points.b.bit"]
    assert "takes 2 register" in problems["modbus.points.c.count"]
    assert "need a flag" in problems["modbus.points.c.on_set"]
    assert "at most 16" in problems["modbus.points.d.count"]
    assert "feeds nothing" in problems["modbus.points.e"]
    assert "already fed by point d" in problems["modbus.points.f.reading"]
    assert "integer" in problems["modbus.points.g.map.low"]


def test_unknown_keys_and_bad_values_fail_with_their_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
[modbus.points.alarm]
function = "discrete_input"
address = 70000
edge = "rising"
""")
    assert set(problems) >= {"modbus.points.alarm.function", "modbus.points.alarm.address",
                             "modbus.points.alarm.edge"}


def _point(**kw: object) -> Point:
    return Point.model_validate({"function": "input_registers", "address": 0,
                                 "reading": "x", **kw})


@pytest.mark.parametrize(("datatype", "byte_order", "word_order", "words", "value"), [
    ("uint16", "big", "big", [0x1234], 0x1234),
    ("uint16", "little", "big", [0x3412], 0x1234),
    ("int16", "big", "big", [0xFF9C], -100),
    ("uint32", "big", "big", [0x0001, 0x11D7], 70_103),
    ("uint32", "big", "little", [0x11D7, 0x0001], 70_103),  # CDAB
    ("int32", "little", "little", [0xFFFF, 0xFFFF], -1),
    ("int32", "little", "big", [0x0100, 0x0000], 1 << 16),  # BADC
    ("float32", "big", "big", [0x41C8, 0x0000], 25.0),
    ("float32", "big", "little", [0x0000, 0x41C8], 25.0),
])
def test_register_layouts(datatype: str, byte_order: str, word_order: str, words: list[int],
                          value: float) -> None:
    point = _point(datatype=datatype, byte_order=byte_order, word_order=word_order)
    assert decode_point(point, 0, words) == value
    assert pack_words(point, value) == words


def test_scale_offset_and_bits() -> None:
    temp = _point(datatype="int16", scale=0.1)
    assert decode_point(temp, 0, [365]) == pytest.approx(36.5)
    assert raw_for(temp, 36.5) == 365
    shifted = _point(scale=0.5, offset=-40)
    assert decode_point(shifted, 0, [100]) == pytest.approx(10.0)
    bit = _point(bit=3, address=7)
    assert decode_point(bit, 5, [0, 0, 0b1000]) is True
    assert decode_point(bit, 5, [0, 0, 0b0111]) is False
    high_bit = _point(datatype="uint32", bit=17)
    assert decode_point(high_bit, 0, [0x0002, 0x0000]) is True
    coil = Point.model_validate({"function": "coils", "address": 9, "on_set": "alarm"})
    assert decode_point(coil, 8, [False, True]) is True


def test_a_float_that_is_not_a_number_is_a_decode_error() -> None:
    point = _point(datatype="float32")
    nan = pack_words(point, math.nan)
    with pytest.raises(ValueError, match="not a number"):
        decode_point(point, 0, nan)
    with pytest.raises(struct.error):
        pack_words(_point(datatype="int16"), 40_000)


def test_crc_and_naming_bad_answers() -> None:
    # the example from the Modbus over serial line guide: unit 1, read 2 holding registers
    assert rtu_frame(1, bytes.fromhex("0300000002")).hex() == "010300000002c40b"
    assert crc16_modbus(b"") == 0xFFFF
    good = rtu_frame(4, bytes.fromhex("03020102"))
    assert classify_rtu(b"", 4, 3)[0] == "timeout"
    assert classify_rtu(good[:4], 4, 3)[0] == "truncated"
    assert classify_rtu(good[:-1] + bytes([good[-1] ^ 1]), 4, 3)[0] == "crc"
    assert classify_rtu(rtu_frame(5, bytes.fromhex("03020102")), 4, 3)[0] == "wrong_unit"
    assert classify_rtu(b"\x84\xde\xad\xbe\xef\x13", 4, 3)[0] == "garbage"
    mbap = bytes.fromhex("0001 0000 0005 04 03020102")
    assert classify_tcp(mbap[:9], 4)[0] == "truncated"
    assert classify_tcp(mbap[:6] + b"\x09" + mbap[7:], 4)[0] == "wrong_unit"
    assert classify_tcp(b"\xde\xad\xbe\xef" * 3, 4)[0] == "garbage"
