"""The shipped replay samples give the transitions written beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import tooling
from rules.problems import RuleError
from tests.rules.sim import PACK_DIR, SAMPLES

NAMES = ["fire", "elder_sos", "manhole_tilt", "fever", "door_held_open"]


@pytest.mark.parametrize("name", NAMES)
def test_sample_replays_as_expected(name: str) -> None:
    lines = tooling.test(PACK_DIR, SAMPLES / f"{name}.jsonl", SAMPLES / "contacts.yaml")
    expected = (SAMPLES / f"{name}.out").read_text(encoding="utf-8").splitlines()
    assert lines == expected


@pytest.mark.parametrize("name", NAMES)
def test_sample_replays_the_same_with_a_restart_before_every_line(name: str) -> None:
    lines = tooling.test(PACK_DIR, SAMPLES / f"{name}.jsonl", SAMPLES / "contacts.yaml",
                         restarts=True)
    assert lines == (SAMPLES / f"{name}.out").read_text(encoding="utf-8").splitlines()


def test_every_sample_has_its_expected_output() -> None:
    assert sorted(p.stem for p in SAMPLES.glob("*.jsonl")) == sorted(NAMES)
    assert sorted(p.stem for p in SAMPLES.glob("*.out")) == sorted(NAMES)


def test_key_moments_of_the_samples() -> None:
    fire = (SAMPLES / "fire.out").read_text()
    assert "00:00:40.000 FIRING       smoke.fire_confirmed building-3 [critical]" in fire
    sos = (SAMPLES / "elder_sos.out").read_text()
    assert "00:02:00.000 NOTIFY       elder.sos elder-3-1-502 duty_office" in sos
    assert "00:05:00.000 NOTIFY       elder.sos elder-3-1-502 clinic" in sos
    assert "00:10:00.000" not in sos  # acknowledged at 6 min: no repeat round
    tilt = (SAMPLES / "manhole_tilt.out").read_text()
    assert "00:00:06.000 FIRING" in tilt
    assert "00:01:06.000 FIRING" in tilt
    door = (SAMPLES / "door_held_open.out").read_text()
    assert door.startswith("00:03:40.000 FIRING       access.held_open door-3-1")


def test_replay_without_contacts_names_nobody(tmp_path: Path) -> None:
    lines = tooling.test(PACK_DIR, SAMPLES / "door_held_open.jsonl")
    assert lines[1].endswith("-> nobody (no contacts)")


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not JSON"),
    ('{"tick": "soon"}', "tick: 'soon' is not a duration"),
    ('{"rec": "event", "id": "x"}', "not a record"),
    ('{"directory": {"d": {"kind": "lamp"}}}', "directory:"),
])
def test_replay_lines_that_cannot_be_read(tmp_path: Path, line: str, message: str) -> None:
    events = tmp_path / "bad.jsonl"
    events.write_text("# a comment\n\n" + line + "\n")
    with pytest.raises(RuleError) as caught:
        tooling.test(PACK_DIR, events)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (events, 3)
    assert message in problem.message


def test_replay_with_broken_rules_raises_their_problems(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules:\n  - id: r\n")
    with pytest.raises(RuleError):
        tooling.test(tmp_path, SAMPLES / "fire.jsonl")
