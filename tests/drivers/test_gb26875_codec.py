"""GB/T 26875.3-2011 codec: the published frames decode to their documented values, every
unit type survives a round trip, and what is not a frame is rejected with a reason."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gb26875.downstream import (
    ClockSync,
    ComponentQuery,
    DutyCheck,
    SystemQuery,
    SystemRecordsQuery,
    TransmitterQuery,
    TransmitterRecordsQuery,
)
from drivers.gb26875.facility import (
    ComponentAnalog,
    ComponentConfiguration,
    ComponentStatus,
    SystemConfiguration,
    SystemOperationRecord,
    SystemSoftware,
    SystemStatus,
    SystemTime,
)
from drivers.gb26875.frame import Command, Frame, FrameError, TimeTag, decode_frame
from drivers.gb26875.objects import ComponentAddress, UnitError
from drivers.gb26875.states import ComponentState, TransmitterOperation, TransmitterState
from drivers.gb26875.stream import FrameStream, Rejected
from drivers.gb26875.transmitter import (
    TransmitterConfiguration,
    TransmitterOperationRecord,
    TransmitterSoftware,
    TransmitterStatus,
    TransmitterTime,
)
from drivers.gb26875.units import OBJECTS, InfoObject, Unit, UnitType, decode_unit
from tests.drivers.gb26875_fixtures import CAPTURE, CAPTURE_WRONG_CHECKSUM, EXAMPLES, UNITS

DEVICE, CENTRE = 889, 88888
AT_0958_02 = TimeTag(2, 58, 9, 26, 9, 12)
SENT_AT = TimeTag(32, 58, 9, 26, 9, 12)
ANSWERED_AT = TimeTag(35, 58, 9, 26, 9, 12)
JULY_2 = TimeTag(4, 0, 9, 2, 7, 21)
ROOM = "7楼02室会议室烟感"


def _unit(name: str) -> Unit:
    return decode_unit(decode_frame(EXAMPLES[name]).data)


def test_the_published_component_fire_alarm_decodes_to_its_documented_values() -> None:
    frame = decode_frame(EXAMPLES["component_fire"])
    assert (frame.serial, frame.version, frame.time) == (1, (1, 1), SENT_AT)
    assert (frame.source, frame.destination, frame.command) == (DEVICE, CENTRE, Command.SEND)
    assert decode_unit(frame.data) == Unit(UnitType.COMPONENT_STATUS, (ComponentStatus(
        system_type=1, system_address=1, component_type=40,  # a smoke detector
        address=ComponentAddress(zone=10, position=2), state=ComponentState.FIRE,
        description="", time=AT_0958_02),))
    assert AT_0958_02.isoformat() == "2012-09-26T09:58:02"


def test_the_published_transmission_device_units_decode_to_their_documented_values() -> None:
    assert _unit("transmitter_power_fault").objects == (
        TransmitterStatus(TransmitterState.MAIN_POWER_FAULT, AT_0958_02),)
    assert _unit("duty_answer").objects == (
        TransmitterOperationRecord(TransmitterOperation.INSPECTION_ANSWER, 1, AT_0958_02),)
    assert _unit("transmitter_software").objects == (TransmitterSoftware(1, 1),)
    assert _unit("transmitter_time").objects == (TransmitterTime(AT_0958_02),)
    assert decode_frame(EXAMPLES["response_transmitter_status"]).command == Command.RESPONSE


def test_the_published_capture_decodes_and_its_wrong_checksum_is_refused() -> None:
    frame = decode_frame(CAPTURE)
    assert (frame.serial, frame.source, frame.destination) == (0, 0, 0x010203040506)
    assert frame.time == TimeTag(24, 13, 17, 22, 10, 20)
    (obj,) = decode_unit(frame.data).objects
    assert isinstance(obj, ComponentStatus)
    assert (obj.system_type, obj.system_address, obj.address.to_int()) == (1, 3, 0x0600D9)
    assert obj.state == ComponentState.FIRE
    assert obj.description == "Ａ区１层呷哺走廊"
    assert obj.time.isoformat() == "2020-08-01T19:18:48"
    with pytest.raises(FrameError) as caught:
        decode_frame(CAPTURE_WRONG_CHECKSUM)
    assert caught.value.reason == "bad_checksum"


def test_the_published_units_of_every_upstream_type_decode_to_their_values() -> None:
    room = ComponentAddress.from_int(0x04030201)
    want: dict[int, InfoObject] = {
        1: SystemStatus(1, 2, 0x0204, JULY_2),
        2: ComponentStatus(1, 2, 121, room, 0x0204, ROOM, JULY_2),
        3: ComponentAnalog(1, 2, 40, room, 3, 800, JULY_2),  # 80.0 °C
        4: SystemOperationRecord(1, 2, 0x84, 0xFA, JULY_2),
        5: SystemSoftware(1, 2, 3, 4),
        6: SystemConfiguration(1, 2, ROOM),
        7: ComponentConfiguration(1, 2, 40, room, ROOM),
        8: SystemTime(1, 2, JULY_2),
        21: TransmitterStatus(8, JULY_2),
        24: TransmitterOperationRecord(0x31, 0xFA, JULY_2),
        25: TransmitterSoftware(3, 4),
        26: TransmitterConfiguration(ROOM),
        28: TransmitterTime(TimeTag(5, 0, 9, 2, 7, 21)),
    }
    for kind, raw in UNITS.items():
        assert decode_unit(raw) == Unit(UnitType(kind), (want[kind],)), kind
        if kind not in (6, 26):  # their texts were sent longer than they are
            assert decode_unit(raw).encode() == raw, kind


def test_confirm_and_deny_encode_byte_for_byte_as_published() -> None:
    sent = decode_frame(EXAMPLES["component_fire"])
    assert sent.answer(Command.CONFIRM, ANSWERED_AT).encode() == EXAMPLES["centre_confirm"]
    assert sent.answer(Command.DENY, ANSWERED_AT).encode() == EXAMPLES["centre_deny"]


@pytest.mark.parametrize(("name", "command", "unit"), [
    ("sync_clock", Command.CONTROL, Unit(UnitType.SYNC_CLOCK, (ClockSync(AT_0958_02),))),
    ("duty_check", Command.CONTROL, Unit(UnitType.DUTY_CHECK, (DutyCheck(10),))),
    ("initialise", Command.CONTROL,
     Unit(UnitType.INITIALISE_TRANSMITTER, (TransmitterQuery(),))),
    ("read_transmitter_status", Command.REQUEST,
     Unit(UnitType.READ_TRANSMITTER_STATUS, (TransmitterQuery(),))),
    ("read_transmitter_time", Command.REQUEST,
     Unit(UnitType.READ_TRANSMITTER_TIME, (TransmitterQuery(),))),
])
def test_control_and_request_frames_encode_byte_for_byte_as_published(
        name: str, command: Command, unit: Unit) -> None:
    frame = Frame(serial=1, command=command, source=CENTRE, destination=DEVICE, time=SENT_AT,
                  data=unit.encode())
    assert frame.encode() == EXAMPLES[name]
    assert decode_unit(decode_frame(EXAMPLES[name]).data) == unit


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_published_frame_encodes_back_to_its_bytes(name: str) -> None:
    assert decode_frame(EXAMPLES[name]).encode() == EXAMPLES[name]


# -- rejections ---------------------------------------------------------------------------

FIRE = EXAMPLES["component_fire"]


@pytest.mark.parametrize(("raw", "reason"), [
    (FIRE[:20], "truncated"),
    (b"$$" + FIRE[2:], "bad_start"),
    (FIRE[:-2] + b"#!", "bad_end"),
    (FIRE[:-3] + bytes(((FIRE[-3] + 1) & 0xFF,)) + b"##", "bad_checksum"),
    (FIRE[:24] + (1025).to_bytes(2, "little") + FIRE[26:], "length_too_large"),
    (FIRE[:24] + (60).to_bytes(2, "little") + FIRE[26:], "length_past_end"),
    (FIRE + b"\0", "trailing_bytes"),
])
def test_malformed_frames_are_rejected_with_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(raw)
    assert caught.value.reason == reason
    assert caught.value.detail


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x02", "truncated_unit"),
    (b"\xfe\x01\x00", "unknown_type"),
    (b"\x09\x00", "unknown_type"),  # reserved for facility information
    (UNITS[2][:-1], "truncated_unit"),
    (UNITS[2] + b"\0", "trailing_bytes"),
    (b"\x06\x01\x01\x02\x05ab", "truncated_unit"),  # a text of 5 bytes with 2 sent
    (b"\x1a\x01", "truncated_unit"),
])
def test_malformed_units_are_rejected_with_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnitError) as caught:
        decode_unit(data)
    assert caught.value.reason == reason


def test_the_stream_splits_frames_at_any_cut_and_skips_what_is_between() -> None:
    good = [EXAMPLES["component_fire"], EXAMPLES["transmitter_time"]]
    bad_sum = CAPTURE_WRONG_CHECKSUM
    wire = b"\xff\x00!" + good[0] + b"junk" + bad_sum + good[1]
    for cut in range(len(wire)):
        stream = FrameStream()
        items = stream.feed(wire[:cut]) + stream.feed(wire[cut:]) + stream.close()
        frames = [i for i in items if isinstance(i, Frame)]
        rejected = [i for i in items if isinstance(i, Rejected)]
        assert [f.encode() for f in frames] == good, cut
        assert {r.reason for r in rejected} == {"bad_start", "bad_checksum"}, cut
        (checksum,) = [r for r in rejected if r.reason == "bad_checksum"]
        assert checksum.header is not None
        assert checksum.header.serial == 0
        assert stream.dropped == 3 + 4


def test_the_stream_resynchronises_after_a_truncated_frame_and_a_huge_length() -> None:
    good = EXAMPLES["transmitter_time"]
    huge = good[:24] + b"\xff\xff" + good[26:]
    stream = FrameStream()
    items = stream.feed(good[:30] + good + huge + good)
    assert [i.encode() for i in items if isinstance(i, Frame)] == [good, good]
    reasons = [i.reason for i in items if isinstance(i, Rejected)]
    assert "bad_end" in reasons
    assert "length_too_large" in reasons
    assert stream.feed(good[:10]) == []
    assert [r.reason for r in stream.close() if isinstance(r, Rejected)] == ["truncated"]


# -- round trips --------------------------------------------------------------------------

byte = st.integers(0, 255)
times = st.builds(TimeTag, byte, byte, byte, byte, byte, st.integers(0, 99))
addresses = st.builds(ComponentAddress, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
_chars = st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp"))


def _texts(size: int) -> st.SearchStrategy[str]:
    return st.text(_chars, max_size=size).map(str.rstrip).filter(
        lambda t: "\0" not in t and len(t.encode("gb18030")) <= size
        and t.encode("gb18030").decode("gb18030") == t)


STRATEGIES: dict[UnitType, st.SearchStrategy[object]] = {
    UnitType.SYSTEM_STATUS: st.builds(SystemStatus, byte, byte, st.integers(0, 0xFFFF), times),
    UnitType.COMPONENT_STATUS: st.builds(ComponentStatus, byte, byte, byte, addresses,
                                         st.integers(0, 0xFFFF), _texts(31), times),
    UnitType.COMPONENT_ANALOG: st.builds(ComponentAnalog, byte, byte, byte, addresses, byte,
                                         st.integers(-32768, 32767), times),
    UnitType.SYSTEM_OPERATION: st.builds(SystemOperationRecord, byte, byte, byte, byte, times),
    UnitType.SYSTEM_SOFTWARE: st.builds(SystemSoftware, byte, byte, byte, byte),
    UnitType.SYSTEM_CONFIGURATION: st.builds(SystemConfiguration, byte, byte, _texts(255)),
    UnitType.COMPONENT_CONFIGURATION: st.builds(ComponentConfiguration, byte, byte, byte,
                                                addresses, _texts(31)),
    UnitType.SYSTEM_TIME: st.builds(SystemTime, byte, byte, times),
    UnitType.TRANSMITTER_STATUS: st.builds(TransmitterStatus, byte, times),
    UnitType.TRANSMITTER_OPERATION: st.builds(TransmitterOperationRecord, byte, byte, times),
    UnitType.TRANSMITTER_SOFTWARE: st.builds(TransmitterSoftware, byte, byte),
    UnitType.TRANSMITTER_CONFIGURATION: st.builds(TransmitterConfiguration, _texts(255)),
    UnitType.TRANSMITTER_TIME: st.builds(TransmitterTime, times),
}
for _kind, _cls in OBJECTS.items():
    if _kind not in STRATEGIES:
        STRATEGIES[_kind] = {
            SystemQuery: st.builds(SystemQuery, byte, byte),
            ComponentQuery: st.builds(ComponentQuery, byte, byte, addresses),
            SystemRecordsQuery: st.builds(SystemRecordsQuery, byte, byte, byte, times),
            TransmitterQuery: st.builds(TransmitterQuery, byte),
            TransmitterRecordsQuery: st.builds(TransmitterRecordsQuery, byte, times),
            ClockSync: st.builds(ClockSync, times),
            DutyCheck: st.builds(DutyCheck, byte),
        }[_cls]


def test_every_unit_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(UnitType)


@settings(max_examples=40, deadline=None)
@given(st.data())
@pytest.mark.parametrize("kind", list(UnitType), ids=lambda k: k.name.lower())
def test_every_unit_type_survives_a_round_trip(kind: UnitType, data: st.DataObject) -> None:
    objects = data.draw(st.lists(STRATEGIES[kind], max_size=4))
    unit = Unit(kind, tuple(objects))  # type: ignore[arg-type]
    raw = unit.encode()
    assert decode_unit(raw) == unit
    if len(raw) <= 1024:
        frame = Frame(serial=7, command=Command.SEND, source=1, destination=2, data=raw)
        assert decode_unit(decode_frame(frame.encode()).data) == unit


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), byte, st.integers(0, (1 << 48) - 1),
       st.integers(0, (1 << 48) - 1), times, st.binary(max_size=1024), st.tuples(byte, byte))
def test_every_frame_survives_a_round_trip_whole_and_through_the_stream(
        serial: int, command: int, source: int, destination: int, time: TimeTag,
        data: bytes, version: tuple[int, int]) -> None:
    frame = Frame(serial=serial, command=command, source=source, destination=destination,
                  time=time, data=data, version=version)
    raw = frame.encode()
    assert decode_frame(raw) == frame
    stream = FrameStream()
    assert stream.feed(raw[:len(raw) // 2]) + stream.feed(raw[len(raw) // 2:]) == [frame]


def test_a_component_address_is_written_zone_dash_position() -> None:
    address = ComponentAddress.parse("3-017")
    assert (address.zone, address.position, str(address)) == (3, 17, "3-017")
    assert ComponentAddress.from_int(address.to_int()) == address
    assert address.to_int().to_bytes(4, "little") == b"\x03\x00\x11\x00"
    for bad in ("3", "3-", "x-1", "70000-1", "1-2-3"):
        with pytest.raises(ValueError, match="zone-position"):
            ComponentAddress.parse(bad)


def test_texts_longer_than_their_field_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="more than 31"):
        ComponentStatus(1, 1, 40, ComponentAddress(1, 1), 0, "烟" * 16, JULY_2).write()


def test_a_clock_not_yet_set_still_gives_a_time_tag_that_can_be_sent() -> None:
    tag = TimeTag.of(datetime(1970, 1, 1, 0, 0, 5))  # a Pi before NTP
    assert tag == TimeTag(5, 0, 0, 1, 1, 70)
    frame = Frame(serial=1, command=Command.CONFIRM, source=1, destination=2, time=tag)
    assert decode_frame(frame.encode()).time == tag
    assert TimeTag.of(datetime(2026, 12, 4, 17, 5, 9)).to_bytes() == bytes(
        (9, 5, 17, 4, 12, 26))
