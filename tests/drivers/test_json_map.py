"""JSON mappings: personal data is never mapped, temperature is never tied to a person."""

from __future__ import annotations

from drivers.json_map import JsonMap, JsonMapper
from drivers.pseudonym import Pseudonymiser
from gateway.model import DeviceKind


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
