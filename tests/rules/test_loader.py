"""Rule files: the default pack loads, and every mistake is named with file, line and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.model import DEVICE_KINDS
from rules import tooling
from rules.definition import READING
from rules.loader import load_pack, pack_from_text, read_pack
from rules.problems import RuleError
from tests.rules.sim import PACK_DIR, SAMPLES

FIVE_MISTAKES = """\
rules:
  - id: tilt.typo
    match: {kind: manhole, type: reading}
    condition: "tilt_degree > 10"
    message: "{device} tilted"
  - id: smoke.types
    match: {kind: smoke, type: alarm}
    condition: "smoke_ppm > 'high'"
    clear: {type: alarm_cleared}
    message: "{device}"
  - id: door.placeholder
    match: {kind: access, type: forced_open}
    clear: {type: door_closed}
    message: "Door {door} forced open"
  - id: elder.event
    match: {kind: elder_button, type: presss}
    clear: {type: cancel}
    message: "{device}"
  - id: gate.duration
    match: {kind: temp_gate, type: reading}
    condition: {field: body_temp_c, at_least: 37.3}
    for: 3 parsecs
    message: "{value}"
"""


def test_five_mistakes_give_five_precise_messages(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(FIVE_MISTAKES)
    problems = tooling.check(tmp_path)
    assert [(p.file, p.line, p.rule) for p in problems] == [
        (file, 4, "tilt.typo"), (file, 8, "smoke.types"), (file, 14, "door.placeholder"),
        (file, 16, "elder.event"), (file, 22, "gate.duration")]
    text = [str(p) for p in problems]
    assert "unknown field 'tilt_degree'; did you mean 'tilt_deg'?" in text[0]
    assert text[0].startswith(f"{file}:4: rule tilt.typo: ")
    assert "cannot compare a number with a text" in text[1]
    assert "unknown placeholder {door}" in text[2]
    assert "'presss' is not an event of elder_button devices" in text[3]
    assert "for: '3 parsecs' is not a duration" in text[4]
    with pytest.raises(RuleError) as caught:
        load_pack(tmp_path)
    assert caught.value.problems == problems


def test_default_pack_covers_the_five_kinds_and_checks_clean() -> None:
    assert tooling.check(PACK_DIR, SAMPLES / "contacts.yaml") == []
    pack = load_pack(PACK_DIR)
    assert {k for r in pack.rules for k in r.match.kinds} == DEVICE_KINDS
    ids = {r.id for r in pack.rules}
    assert {"smoke.alarm", "smoke.fire_confirmed", "access.held_open", "manhole.tilt",
            "elder.sos", "temp_gate.fever", "device.offline", "device.low_battery"} <= ids
    assert any(READING in r.match.types for r in pack.rules)


def test_contacts_missing_a_group_are_reported(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("groups:\n  duty_office: ['mqtt://sc/c1/duty']\n  bad: ['phone 123']\n")
    problems = [str(p) for p in tooling.check(PACK_DIR, contacts)]
    assert f"{contacts}:3: group bad: 'phone 123' is not a target URL" in problems[0]
    assert any("no contacts for group 'family'" in p for p in problems)


@pytest.mark.parametrize(("source", "message"), [
    ("__import__('os').system('true')", "only abs(), min() and max() may be called"),
    ("tilt_deg.real > 1", "attribute access (a.b) is not allowed"),
    ("tilt_deg ** 99 > 1", "the operator ** is not allowed"),
    ("tilt_deg if open else 0", "if/else is not allowed"),
    ("tilt_deg in (1, 2)", "the comparison in is not allowed"),
    ("tilt_deg", "gives a number value; a true/false one is needed"),
    ("tilt_deg > 1 and 5", "and/or needs a true/false value, not a number"),
    ("abs(tilt_deg, 1) > 1", "abs() takes one argument, not 2"),
    ("max(tilt_deg) > 1", "max() takes two or more, not 1"),
    ("open == true", "cannot compare a number with a true/false (flags are the numbers 0 and 1)"),
    ("tilt_deg > ", "is not valid"),
    ("lambda: 1", "lambda is not allowed"),
])
def test_expressions_outside_the_whitelist_are_refused(source: str, message: str) -> None:
    text = f"""
rules:
  - id: r
    match: {{kind: manhole, type: reading}}
    condition: "{source}"
    message: "m"
"""
    with pytest.raises(RuleError) as caught:
        pack_from_text(text)
    (problem,) = caught.value.problems
    assert message in problem.message
    assert problem.line == 5


def test_a_block_expression_reports_the_line_of_the_mistake() -> None:
    text = """rules:
  - id: r
    match: {kind: manhole, type: reading}
    condition: |
      tilt_deg > 10
      and water_cm > 3
    message: "m"
"""
    with pytest.raises(RuleError) as caught:
        pack_from_text(text)
    (problem,) = caught.value.problems
    assert (problem.line, problem.rule) == (6, "r")
    assert "did you mean 'water_level_cm'" in problem.message


@pytest.mark.parametrize(("text", "line", "message"), [
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm\n", 4, "not valid YAML"),
    ("rules:\n  - id: r/1\n    match: {kind: smoke, type: alarm}\n    clear: {latch: true}\n"
     "    message: m\n", 2, "id: is required"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    message: m\n", 2,
     "an event rule needs clear"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    clear: {typ: x}\n"
     "    message: m\n", 4, "unknown key 'typ'"),
    ("rules:\n  - id: r\n    match: {kind: lamp, type: alarm}\n    message: m\n", 3,
     "unknown kind 'lamp'"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    clear: {latch: true}\n"
     "    message: m\n    escalation: nobody\n", 6, "no escalation policy 'nobody'"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: reading}\n    message: m\n", 2,
     "needs a condition"),
    ("rules:\n  - id: r\n    match: {kind: [smoke, access], type: reading}\n"
     "    condition: 'battery_pct < 10'\n    message: m\n", 4, "unknown field 'battery_pct'"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    clear: {type: alarm}\n"
     "    message: m\n", 4, "alarm both meets and clears"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    clear: {latch: true}\n"
     "    message: '{value:q}'\n", 5, "placeholder {value:q}"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n    condition: {rate: smoke_ppm}"
     "\n    clear: {latch: true}\n    message: m\n", 4, "give exactly one of above"),
    ("escalations:\n  p:\n    steps:\n      - {after: 2m, notify: a}\n      - {after: 1m, "
     "notify: b}\n", 5, "steps must be in order"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: any}\n    absence: 10m\n"
     "    key: building\n    message: m\n", 5, "an absence rule is keyed by device"),
    ("rules:\n  - id: r\n    match: {kind: smoke, type: alarm}\n"
     "    clear: {type: alarm_cleared, by_hand: 'yes'}\n    message: m\n", 4,
     "by_hand: is true or false"),
])
def test_mistakes_are_located(text: str, line: int, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        pack_from_text(text)
    assert any(p.line == line and message in p.message for p in caught.value.problems), \
        caught.value.problems


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    rule = "rules:\n  - id: same\n    match: {kind: smoke, type: alarm}\n" \
           "    clear: {latch: true}\n    message: m\n"
    (tmp_path / "a.yaml").write_text(rule)
    (tmp_path / "b.yaml").write_text(rule)
    pack, problems = read_pack(tmp_path)
    assert [r.id for r in pack.rules] == ["same"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:2: rule same: duplicate rule id (also at "
        f"{tmp_path / 'a.yaml'}:2)"]


def test_an_empty_directory_is_a_problem(tmp_path: Path) -> None:
    (problem,) = tooling.check(tmp_path)
    assert "no rule files" in problem.message


def test_a_list_of_files_and_directories(tmp_path: Path) -> None:
    extra = tmp_path / "site.yaml"
    extra.write_text("rules:\n  - id: site.extra\n    match: {kind: smoke, type: test}\n"
                     "    clear: {latch: true}\n    message: m\n")
    pack = load_pack([PACK_DIR, extra])
    assert pack.rule("site.extra") is not None
    assert pack.rule("elder.sos") is not None
