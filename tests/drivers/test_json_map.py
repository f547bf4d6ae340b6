"""JSON mappings: personal data is never mapped, temperature is never tied to a person."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.json_map import JsonMap, JsonMapper, MalformedJsonError, parse_json
from drivers.pseudonym import Pseudonymiser
from gateway.core.model import DeviceKind

_ABSENT = object()  # a key left out of the payload


def test_an_ignored_path_cannot_be_mapped() -> None:
    mapping = JsonMap.model_validate({
        "ignore": ["holder"], "card": "holder.card",
        "readings": [{"path": "holder.name", "reading": "door_open"}]})
    problems = dict(mapping.problems(DeviceKind.ACCESS))
    assert "listed under ignore" in problems["card"]
    assert "listed under ignore" in problems["readings[0].path"]


def test_temperature_gates_take_no_card() -> None:
    mapping = JsonMap.model_validate({"card": "card_no"})
    assert dict(mapping.problems(DeviceKind.TEMP_GATE))["card"].startswith(
        "temperature readings are never tied to a person")
    assert mapping.problems(DeviceKind.ACCESS) == []


def test_one_card_one_pseudonym_however_it_is_written() -> None:
    key = Pseudonymiser(b"compound-secret-key-0123")
    assert key("0012345678") == key("12345678") == key(" 12345678 ")
    assert key("0000") is None
    mapper = JsonMapper(JsonMap.model_validate({
        "card": "card", "events": [{"path": "code", "map": {"0": "granted"}}]}),
        DeviceKind.ACCESS, "door-1", key)
    (event,) = mapper.decode({"code": 0, "card": "0012345678"}, 1).events
    assert event.fields == {"card": key("12345678")}
    (event,) = mapper.decode({"code": 0, "card": ""}, 2).events
    assert "card" not in event.fields


def test_deep_nesting_and_repeated_keys_are_malformed_json() -> None:
    for depth in (65, 1_000, 100_000):
        with pytest.raises(MalformedJsonError, match="nested deeper"):
            parse_json(b"[" * depth + b"]" * depth)
    assert parse_json(b"[" * 64 + b"]" * 64)  # as deep as allowed
    with pytest.raises(MalformedJsonError, match="'action' appears twice"):
        parse_json(b'{"action": "long", "action": "single"}')
    with pytest.raises(MalformedJsonError, match="'t' appears twice"):  # ':' in a string
        parse_json(b'{"at": "12:30", "x": {"t": 1, "t": 2}}')
    assert parse_json(b'{"at": "12:30", "x": {"t": 1}, "y": {"t": 2}}')["y"] == {"t": 2}
    # a ':' that only the decoded text has cannot hide a repeated key
    with pytest.raises(MalformedJsonError, match="'action' appears twice"):
        parse_json(b'{"action": "long", "action": "single", "x": "\\u003a"}')
    assert parse_json(b'{"a:b": ["c:d", {"e": "\\u003a"}]}') == {"a:b": ["c:d", {"e": ":"}]}
    # one object of scalars, the common payload, is read without walking it: the same
    # verdicts as the walk
    assert parse_json(b'{"t": 36.6, "mask": 1, "id": "g-1", "x": {}}') == {
        "t": 36.6, "mask": 1, "id": "g-1", "x": {}}
    with pytest.raises(MalformedJsonError, match="'t' appears twice"):
        parse_json(b'{"t": 36.6, "t": 36.6}')
    with pytest.raises(MalformedJsonError, match="'t' appears twice"):
        parse_json(b'{"t": 36.6, "t": 36.6, "at": "\\u003a"}')


def _problems(mapping: dict[str, Any], kind: DeviceKind, body: dict[str, Any]
              ) -> list[tuple[str, str]]:
    mapper = JsonMapper(JsonMap.model_validate(mapping), kind, "dev-1",
                        Pseudonymiser(b"compound-secret-key-0123"))
    return mapper.decode(body, 1).problems


def test_a_card_that_is_not_a_number_is_rejected_without_its_value() -> None:
    mapping = {"card": "card", "events": [{"path": "code", "map": {"0": "granted"}}]}
    for card in (12345678.5, {"no": "12345678"}, ["12345678"], True):
        (problem,) = _problems(mapping, DeviceKind.ACCESS, {"code": 0, "card": card})
        assert problem[0] == "bad_card"
        assert "1234" not in problem[1]
        assert "not a card number" in problem[1]


def test_values_of_the_wrong_type_are_rejected() -> None:
    smoke = {"events": [{"path": "tamper", "equals": True, "event": "tamper"},
                        {"path": "tamper", "equals": False, "event": "tamper_cleared"}]}
    assert _problems(smoke, DeviceKind.SMOKE, {"tamper": "x"}) == [
        ("bad_value", "tamper='x' is not a boolean")]
    assert _problems(smoke, DeviceKind.SMOKE, {"tamper": 1}) == []  # a flag as 1 or true
    gate = {"events": [{"path": "abnormal", "equals": 1, "event": "fever"}]}
    assert _problems(gate, DeviceKind.TEMP_GATE, {"abnormal": "yes"}) == [
        ("bad_value", "abnormal='yes' is not a number")]


def test_a_huge_bad_value_is_cut_short_in_the_problem() -> None:
    mapping = {"readings": [{"path": "battery", "reading": "battery_pct"}]}
    ((reason, detail),) = _problems(mapping, DeviceKind.ELDER_BUTTON,
                                    {"battery": "9" * 10_000_000})
    assert reason == "bad_value"
    assert len(detail) < 200
    assert "10000002 characters" in detail


GATE = JsonMap.model_validate({"readings": [
    {"path": "body_temp_c", "reading": "body_temp_c"},
    {"path": "mask", "reading": "mask"},
    {"path": "passage_count", "reading": "passage_count"},
    {"path": "temp_x10", "reading": "body_temp_c", "scale": 0.1}]})
# what a gate's payload may hold under each key: numbers in and out of range, flags,
# text, null, and nothing at all
gate_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False, width=32),
                        st.sampled_from([36.5, 37.3, 38.25, 0.0, -0.0, 1, 0, 365]),
                        st.text(max_size=3), st.just(_ABSENT))


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({key: gate_values for key in
                              ("body_temp_c", "mask", "passage_count", "temp_x10")}))
def test_the_quick_way_reads_a_payload_as_decode_does_or_leaves_it(body: dict[str, Any]
                                                                     ) -> None:
    """`quick` gives the reading `decode` gives, for a payload `decode` finds nothing wrong
    with, and leaves any other payload to `decode`."""
    body = {key: value for key, value in body.items() if value is not _ABSENT}
    mapper = JsonMapper(GATE, DeviceKind.TEMP_GATE, "gate-1")
    quick = mapper.quick(body, 1_765_000_000_000)
    decoded = mapper.decode(body, 1_765_000_000_000)
    if quick is None:
        assert decoded.problems or decoded.reading is None or any(
            type(v) is bool for v in body.values())
        return
    assert not decoded.problems
    assert decoded.reading is not None
    assert (quick.ts, quick.kind, quick.device) == (decoded.reading.ts, decoded.reading.kind,
                                                    decoded.reading.device)
    assert quick.values == decoded.reading.values
    assert [type(v) for v in quick.values.values()] == [
        type(v) for v in decoded.reading.values.values()]
    assert quick.id != decoded.reading.id


def test_a_gates_usual_payload_takes_the_quick_way_and_others_do_not() -> None:
    mapper = JsonMapper(GATE, DeviceKind.TEMP_GATE, "gate-1")
    reading = mapper.quick({"body_temp_c": 36.5, "mask": 1, "passage_count": 7, "seq": 3}, 5)
    assert reading is not None
    assert reading.values == {"body_temp_c": 36.5, "mask": 1, "passage_count": 7}
    assert mapper.quick({"body_temp_c": 50.0}, 5) is None  # out of range: decode says so
    assert mapper.quick({"body_temp_c": "hot"}, 5) is None
    assert mapper.quick([36.5], 5) is None
    assert mapper.quick({"seq": 3}, 5) is None  # no reading at all
    nested = JsonMapper(JsonMap.model_validate({"readings": [
        {"path": "data.t", "reading": "body_temp_c"}]}), DeviceKind.TEMP_GATE, "gate-2")
    assert nested.quick({"data": {"t": 36.5}}, 5) is None  # a path into the payload
    events = JsonMapper(JsonMap.model_validate({
        "readings": [{"path": "t", "reading": "body_temp_c"}],
        "events": [{"path": "fever", "equals": True, "event": "fever"}]}),
        DeviceKind.TEMP_GATE, "gate-3")
    assert events.quick({"t": 36.5}, 5) is None  # a mapping with events
