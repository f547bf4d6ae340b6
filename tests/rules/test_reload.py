"""Hot reload and restore across rule changes: unchanged rules keep their state."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway import supervisor
from rules.definition import RulePack
from rules.engine import RuleEngine
from rules.loader import pack_from_text
from rules.problems import RuleError
from tests.helpers import make_config, unique_site
from tests.rules.sim import ACKED, CONTACTS, DIRECTORY, FIRING, RESOLVED, Sim, ms

SOS = """
  - id: sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    message: "SOS {device}"
    escalation: elder
"""
HELD = """
  - id: held
    match: {kind: access, type: door_opened}
    for: 120s
    clear: {type: door_closed}
    message: "held"
"""
FIRE = """
  - id: fire
    match: {kind: smoke, type: alarm}
    count: {at_least: 2, within: 60s, distinct: true}
    key: building
    clear: {type: alarm_cleared}
    message: "fire"
"""
POLICY = """
escalations:
  elder:
    steps:
      - {after: 0s, notify: family}
      - {after: 2m, notify: duty_office}
"""


def pack(*rules: str) -> RulePack:
    return pack_from_text("rules:" + "".join(rules) + POLICY)


def started() -> Sim:
    sim = Sim(pack(SOS, HELD, FIRE))
    sim.event("elder-1", "press", 0)
    sim.event("door-1", "door_opened", 10)  # pending until 130 s
    sim.event("smoke-3-1", "alarm", 20)  # one of two in the window
    return sim


def test_reload_of_the_same_rules_keeps_everything() -> None:
    sim = started()
    assert sim.engine.reload(pack(SOS, HELD, FIRE)) == []
    sim.event("smoke-3-2", "alarm", 30)  # the window survived: confirmed
    sim.until(130)  # the pending `for` survived
    assert sim.states() == [("sos", "elder-1", FIRING, 0), ("fire", "building-3", FIRING, 30),
                            ("held", "door-1", FIRING, 130)]
    assert [(g, s) for _, g, s, _, _ in sim.steps()] == [("family", 0), ("duty_office", 1)]


def test_a_changed_rule_keeps_its_active_alert_but_not_its_windows() -> None:
    sim = started()
    changed_sos = SOS.replace("SOS {device}", "Elder SOS at {device}")
    changed_fire = FIRE.replace("within: 60s", "within: 90s")
    assert sim.engine.reload(pack(changed_sos, HELD, changed_fire)) == []
    assert [a.rule for a in sim.engine.active()] == ["sos"]  # still firing: still escalating
    sim.event("smoke-3-2", "alarm", 30)  # the window started afresh: one alarm is not a fire
    sim.until(120)
    assert ("elder-1", "duty_office", 1, 0, 120) in sim.steps()
    sim.event("elder-1", "cancel", 200)
    assert sim.alerts[-1].message == "Resolved: Elder SOS at elder-1"
    assert [a.rule for a in sim.alerts if a.state is FIRING] == ["sos", "held"]


def test_removed_rules_resolve_their_alerts_and_drop_their_state() -> None:
    sim = started()
    sim.until(130)
    out = sim.engine.reload(pack(SOS))
    assert [(a.rule, a.device, a.state) for a in out] == [("held", "door-1", RESOLVED)]
    assert "rule held was removed" in out[0].message
    sim.event("door-1", "door_closed", 140)
    assert sim.engine.reload(pack(SOS, HELD, FIRE)) == []
    sim.event("smoke-3-2", "alarm", 150)  # the old window went with the rule
    assert [a.rule for a in sim.engine.active()] == ["sos"]


def test_a_rule_keyed_differently_resolves_what_it_had() -> None:
    sim = started()
    per_floor = SOS.replace("message:", "key: floor\n    message:")
    (resolved,) = sim.engine.reload(pack(per_floor, HELD, FIRE))
    assert (resolved.rule, resolved.state) == ("sos", RESOLVED)
    assert "rule sos changed" in resolved.message


def test_an_inconsistent_pack_is_refused_and_nothing_changes() -> None:
    sim = started()
    before = sim.engine.snapshot()
    broken = RulePack(pack(SOS).rules, {})  # its escalation policy is missing
    with pytest.raises(RuleError):
        sim.engine.reload(broken)
    assert sim.engine.snapshot() == before


def test_restore_after_the_rules_changed_while_stopped() -> None:
    sim = started()
    sim.ack("sos", "elder-1", 40)
    saved = sim.engine.snapshot()
    engine = RuleEngine(pack(HELD), DIRECTORY, CONTACTS)  # sos and fire were deleted
    engine.restore(saved)
    assert engine.active() == []
    out = engine.on_time(ms(50))  # the resolution is reported with the next call
    assert [(a.rule, a.state) for a in out] == [("sos", RESOLVED)]
    assert [(a.rule, a.state) for a in engine.on_time(ms(130))] == [("held", FIRING)]


def test_restore_keeps_acknowledged_alerts() -> None:
    sim = started()
    sim.ack("sos", "elder-1", 40)
    engine = RuleEngine(pack(SOS, HELD, FIRE), DIRECTORY, CONTACTS)
    engine.restore(sim.engine.snapshot())
    assert [(a.rule, a.state) for a in engine.active()] == [("sos", ACKED)]
    assert engine.snapshot() == sim.engine.snapshot()


async def test_a_reload_that_fails_for_any_reason_is_counted_and_the_rules_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = supervisor.Gateway(make_config(tmp_path, site=unique_site("reload")))
    before = gateway.rules.snapshot()

    def exhausted(*_args: object, **_kwargs: object) -> RulePack:
        # what a machine out of memory does to any loader, however bounded
        raise MemoryError("cannot allocate\nwhile reading")

    monkeypatch.setattr(supervisor, "load_pack", exhausted)
    with caplog.at_level(logging.ERROR, logger=supervisor.__name__):
        assert await gateway.reload_rules() is False
    assert gateway.counters.get("rule_reloads", result="failed") == 1
    assert gateway.rules.snapshot() == before
    (record,) = caplog.records
    assert record.getMessage() == ("rules not reloaded, the running rules stay: MemoryError: "
                                   "cannot allocate while reading")
