"""Rule and contacts files beyond the limits are refused quickly, naming file, line and rule."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rules import tooling
from rules.contacts import read_contacts
from rules.limits import MAX_FILE_BYTES
from rules.loader import load_pack, pack_from_text, read_pack
from rules.problems import RuleError, RuleProblem
from rules.templates import Template
from tests.rules.sim import PACK_DIR

# nine anchors of nine aliases each: 9**9 values once expanded, in a few hundred bytes
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True))
# few aliases, each doubling what the one before names: 2**40 values
DOUBLING = "x0: &x0 [lol, lol]\n" + "".join(
    f"x{n}: &x{n} [*x{n - 1}, *x{n - 1}]\n" for n in range(1, 21))
SOS = """rules:
  - id: elder.sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
"""


def _refused(text: str) -> list[RuleProblem]:
    started = time.monotonic()
    with pytest.raises(RuleError) as caught:
        pack_from_text(text)
    assert time.monotonic() - started < 5  # refused, not ground through
    return caught.value.problems


@pytest.mark.parametrize(("text", "line", "message"), [
    (LAUGHS, 7, "more than 50 aliases (*name) in one file"),
    (DOUBLING, 15, "more than 100000 values in one file"),
    ("rules: &x [*x]\n", 1, "the alias *x is inside the value it names: a loop"),
    ("rules:\n  - &r {id: r, match: {kind: smoke, type: alarm}, clear: [*r]}\n", 2, "a loop"),
    ("rules: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested deeper than 32 levels"),
    ("rules:\n" + "".join(f"{'  ' * n}- \n" for n in range(1, 40)), 33,
     "nested deeper than 32 levels"),
    ("a: &a " + "[" * 30 + "]" * 30 + "\nb: [[[*a]]]\n", 2, "nested deeper than 32 levels"),
    ("rules:\n  - id: " + "r" * 5000 + "\n", 2, "a value longer than 4096 characters"),
    (SOS + "    consecutive: 1" + "0" * 4000 + "\n", 5, "the number '10000000000000000000"),
    (SOS + "    message: 2026-13-45\n", 5, "a value that cannot be read: month must be in 1..12"),
    (SOS + "    consecutive: 1.0e+999\n", 5, "the number '1.0e+999' is out of range"),
    (SOS + "    consecutive: .nan\n", 5, "the number '.nan' is out of range"),
    (SOS + "    consecutive: 10000000000000000\n", 5, "is out of range (at most 1e+15"),
])
def test_a_file_beyond_a_limit_is_refused_whole_at_its_line(
    text: str, line: int, message: str
) -> None:
    (problem,) = _refused(text)
    assert problem.line == line
    assert message in problem.message


def test_anchors_and_aliases_within_the_limits_still_load() -> None:
    pack = pack_from_text("""rules:
  - id: fire
    match: &smoke {kind: smoke, type: alarm}
    clear: &cleared {type: alarm_cleared}
    message: "fire {device}"
  - id: fire.again
    match: *smoke
    clear: *cleared
    message: "again {device}"
""")
    assert [r.match for r in pack.rules] == [pack.rules[0].match] * 2


@pytest.mark.parametrize(("part", "line", "message"), [
    ("    condition: \"" + "not " * 300 + "open\"\n", 5, "longer than 1000 characters"),
    ("    condition: \"" + "not " * 40 + "open\"\n", 5, "nests operators deeper than 32 levels"),
    ("    condition: \"" + "tilt_deg + " * 40 + "1 > 2\"\n", 5, "deeper than 32 levels"),
    ("    condition: |\n      " + "-" * 900 + "tilt_deg > 1\n", 6, "deeper than 32 levels"),
    ("    condition: \"tilt_deg > 1" + "0" * 900 + "\"\n", 5, "the number 10000000000000000000..."
     " is out of range"),
    ("    condition: \"tilt_deg > 1e999\"\n", 5, "the number 1e999 is out of range"),
    ("    condition: \"tilt_deg * 10000000000000000 > 1\"\n", 5, "out of range"),
    ("    condition: \"tilt_deg > 1\"\n    for: " + "9" * 400 + "h\n", 6,
     "for: '" + "9" * 39 + "... is longer than 8784h"),
    ("    condition: \"tilt_deg > 1\"\n    for: 8785h\n", 6, "is longer than 8784h"),
])
def test_an_expression_or_duration_beyond_a_limit_names_its_rule(
    part: str, line: int, message: str
) -> None:
    text = "rules:\n  - id: tilt\n    match: {kind: manhole, type: reading}\n    message: m\n"
    (problem,) = _refused(text + part)
    assert (problem.line, problem.rule) == (line, "tilt")
    assert message in problem.message


@pytest.mark.parametrize(("message", "problem"), [
    ("{device:>10000000}", "placeholder {device:>10000000}: the width is at most 64"),
    ("{value:.10000000f}", "placeholder {value:.10000000f}: the precision is at most 64"),
    ("{value:0" + "9" * 900 + "}", "the width is at most 64"),
    ("{value:065.1f}", "the width is at most 64"),
    ("SOS " * 300, "a message is at most 1000 characters, not 1200"),
])
def test_a_template_that_would_make_a_huge_alert_is_refused(message: str, problem: str) -> None:
    (found,) = _refused(SOS + f"    message: '{message}'\n")
    assert (found.line, found.rule) == (5, "elder.sos")
    assert problem in found.message


def test_the_widest_template_allowed_stays_small() -> None:
    pack = pack_from_text(SOS + "    message: '{device:>64} {value:64.64f}'\n")
    rendered = pack.rules[0].message.render({"device": "sos-1", "value": 1e15})
    assert len(rendered) < 200
    assert Template("{device:<3}|").render({"device": "sos-1"}) == "sos-1|"


def test_an_oversized_or_binary_rule_file_is_named(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("rules: []\n" + "#" * MAX_FILE_BYTES)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"rules:\n  - id: r\n    message: \xff\xfe\n")
    problems = tooling.check(tmp_path)
    assert [str(p) for p in problems] == [
        f"{big}:1: larger than 1024 KiB: not read",
        f"{binary}:3: not UTF-8 text on line 3 (byte 30: invalid start byte)"]
    with pytest.raises(RuleError):
        load_pack(tmp_path)


def test_a_named_pipe_in_place_of_a_rule_file_does_not_stall_the_reader(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")  # opened for reading, it would wait for a writer
    contacts = tmp_path / "contacts"
    contacts.mkdir()
    problems = tooling.check(tmp_path, contacts)
    assert [str(p) for p in problems] == [
        f"{contacts}:1: not a regular file: not read",
        f"{tmp_path / 'pipe.yaml'}:1: not a regular file: not read"]


def test_a_good_file_beside_a_refused_one_still_loads(tmp_path: Path) -> None:
    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    (tmp_path / "sos.yaml").write_text(SOS + "    message: m\n")
    pack, problems = read_pack(tmp_path)
    assert [r.id for r in pack.rules] == ["elder.sos"]
    assert [(p.file.name, p.line) for p in problems] == [("laughs.yaml", 7)]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("groups:\n" + LAUGHS.replace("\n", "\n  ").replace("a: &a", "  a: &a", 1), 8,
     "more than 50 aliases"),
    ("groups: &g {duty: [*g]}\n", 1, "a loop"),
    ("groups:\n  duty: ['mqtt://" + "x" * 5000 + "']\n", 2, "longer than 4096 characters"),
])
def test_contacts_files_have_the_same_limits(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(text)
    book, problems = read_contacts(contacts)
    assert book is None
    (problem,) = problems
    assert (problem.file, problem.line) == (contacts, line)
    assert message in problem.message
    assert tooling.check(PACK_DIR, contacts)[0] == problem


def test_a_large_real_contacts_file_is_within_the_limits(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.yaml"
    elders = "".join(f"  elder-{n}:\n    family: ['tgram://bot-token/{n}']\n"
                     for n in range(5000))
    contacts.write_text("groups: {duty_office: ['mqtt://sc/c1/duty']}\ndevices:\n" + elders)
    book, problems = read_contacts(contacts)
    assert problems == []
    assert book is not None
    assert book.targets("family", ["elder-4999"]) == ("tgram://bot-token/4999",)


@pytest.mark.parametrize(("line", "message"), [
    (b'{"tick": "' + b"9" * 400 + b'h"}', "tick: '" + "9" * 39 + "... is longer than 8784h"),
    (b"[" * 100_000, "not JSON: nested too deeply"),
    (b'{"tick": "\xff"}', "not UTF-8 text on line 2"),
])
def test_a_replay_file_beyond_a_limit_names_its_line(
    tmp_path: Path, line: bytes, message: str
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"tick": "1s"}\n' + line + b"\n")
    with pytest.raises(RuleError) as caught:
        tooling.replay(PACK_DIR, events)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (events, 2)
    assert message in problem.message
