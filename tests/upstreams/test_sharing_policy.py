"""Sharing policies: read with file and line, default deny, and sensitive data refused in
clear without a legal basis."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.config import Location
from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.upstreams.policy import PolicyError, load_policy, policy_from_text
from gateway.upstreams.shaping import Shaped, Shaper

TEMPLATES = Path(__file__).resolve().parents[2] / "sharing"

FEVER_IN_CLEAR = """\
description: a health office that wants temperatures
rules:
  - id: ok-faults
    select: {records: [event], type: [fault]}
    fields: [ts, type]
  - id: fevers
    select:
      records: [event]
      kind: [temp_gate]
      type: [fever]
    fields: [ts, type, body_temp_c, device]
"""


def test_the_templates_load() -> None:
    names = {p.name for p in TEMPLATES.glob("*.yaml")}
    assert names == {"city_fire.yaml", "district_elder_care.yaml", "property_company.yaml",
                     "street_office_grid.yaml"}
    for path in TEMPLATES.glob("*.yaml"):
        assert load_policy(path).rules


def test_body_temperature_in_clear_without_a_basis_is_refused_naming_file_line_field(
        tmp_path: Path) -> None:
    file = tmp_path / "health.yaml"
    file.write_text(FEVER_IN_CLEAR)
    with pytest.raises(PolicyError) as caught:
        load_policy(file)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 2
    for problem in problems:
        assert problem.startswith(f"{file}:6: rule fevers: field ")
    assert "field 'body_temp_c' (health, sensitive) would leave in clear" in problems[0]
    assert "field 'type' (health, sensitive)" in problems[1]
    # with a basis it is accepted; pseudonymised or dropped it needs none
    load_policy_text = FEVER_IN_CLEAR + "    basis: law\n    reference: epidemic law art. 31\n"
    assert policy_from_text(load_policy_text).rules[1].basis_text == \
        "law: epidemic law art. 31"
    without = FEVER_IN_CLEAR.replace("fields: [ts, type, body_temp_c, device]",
                                     "fields: [ts, type]\n    pseudonymise: [body_temp_c]")
    with pytest.raises(PolicyError) as caught:
        policy_from_text(without)  # the type `fever` still tells of health
    assert [p.message.split(" (")[0] for p in caught.value.problems] == ["field 'type'"]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("rules:\n  - id: a\n    select: {records: [event]}\n    fields: [ts]\n    colour: red\n",
     5, "unknown key 'colour'"),
    ("rules:\n  - id: a\n    select: {kind: [toaster]}\n    fields: [ts]\n", 3,
     "kind: 'toaster' is not one of"),
    ("rules:\n  - id: a\n    select: {kind: [smoke], type: [press]}\n    fields: [ts]\n", 3,
     "'press' is not an event type of smoke"),
    ("rules:\n  - id: a\n    select: {}\n    fields: [ts]\n    basis: law\n", 5,
     "basis: needs reference:"),
    ("rules:\n  - id: a\n    select: {}\n    aggregate: {period: 7m}\n", 4,
     "must divide a day"),
    ("rules:\n  - id: a\n    select: {}\n", 2, "fields: is required"),
    ("rules:\n  - id: a\n    select: {}\n    fields: [ts]\n  - id: a\n    select: {}\n"
     "    fields: [ts]\n", 5, "duplicate id"),
    ("rules:\n  - id: a\n    select: {}\n    fields: [ts]\n    round: soon\n", 5,
     "round: 'soon' is not a duration"),
])
def test_mistakes_are_named_with_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_text(text, Path("p.yaml"))
    found = [(p.line, p.message) for p in caught.value.problems]
    assert any(n == line and message in m for n, m in found), found


def test_default_deny_and_the_first_rule_that_selects() -> None:
    policy = policy_from_text("""
rules:
  - id: faults
    select: {records: [event], type: [fault]}
    fields: [type]
  - id: smoke
    select: {records: [event], kind: [smoke]}
    fields: [type, floor]
    place: floor
""")
    shaper = Shaper("x", policy, "c1", None, {"s": Location(building="3", floor=2)}.get)
    fault = shaper.shape(1, make_event(DeviceKind.SMOKE, "s", "fault", 1000))
    alarm = shaper.shape(2, make_event(DeviceKind.SMOKE, "s", "alarm", 1000))
    assert isinstance(fault, Shaped)
    assert fault.rule.id == "faults"
    assert isinstance(alarm, Shaped)
    assert alarm.rule.id == "smoke"
    assert alarm.parcel.payload == f'{{"id":"{alarm.parcel.record_id}","type":"alarm",' \
                                   '"floor":2}'.encode()
    assert shaper.shape(3, make_event(DeviceKind.MANHOLE, "s", "open", 1000)) is None


def test_a_policy_that_pseudonymises_needs_a_key() -> None:
    policy = policy_from_text("rules:\n  - id: a\n    select: {}\n    pseudonymise: [device]\n")
    no_places: dict[str, Location] = {}
    with pytest.raises(ValueError, match="no pseudonym key"):
        Shaper("x", policy, "c1", None, no_places.get)


def test_a_rule_selects_by_the_devices_tags() -> None:
    policy = policy_from_text("rules:\n  - id: fire-system\n    select: {kind: [smoke], "
                              "tags: [fire-system]}\n"
                              "    fields: [device, type]\n")
    tags = {"panel-3": frozenset({"fire-system", "building-3"})}
    no_places: dict[str, Location] = {}
    shaper = Shaper("x", policy, "c1", None, no_places.get, lambda d: tags.get(d, frozenset()))
    tagged = shaper.shape(1, make_event(DeviceKind.SMOKE, "panel-3", "fault", 1000))
    assert isinstance(tagged, Shaped)
    assert tagged.rule.id == "fire-system"
    assert shaper.shape(2, make_event(DeviceKind.SMOKE, "smoke-9", "fault", 1000)) is None
