"""Escalation steps: timing, acknowledgement, repeats, and restarts in the middle."""

from __future__ import annotations

from gateway.core.kinds import make_event
from rules.engine import RuleEngine
from rules.loader import pack_from_text
from rules.notify import NotifyReason
from tests.rules.sim import CONTACTS, DIRECTORY, T0, Sim, default_pack, ms

SOS = """
rules:
  - id: sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "SOS {device}"
    escalation: elder
escalations:
  elder:
    steps:
      - {after: 0s, notify: family}
      - {after: 2m, notify: duty_office}
      - {after: 5m, notify: clinic}
    repeat: 10m
"""


def test_steps_come_at_their_time_until_acknowledged() -> None:
    sim = Sim(SOS)
    (alert,) = sim.event("elder-1", "press", 0)
    assert sim.steps() == [("elder-1", "family", 0, 0, 0)]
    (family,) = sim.notes
    assert family.id == f"{alert.id}:0:0"
    assert family.targets == ("tgram://token/elder-1-family",)  # the elder's own family
    assert family.reason is NotifyReason.ESCALATION
    sim.until(119)
    assert len(sim.notes) == 1
    sim.until(300)
    assert sim.steps()[1:] == [("elder-1", "duty_office", 1, 0, 120),
                               ("elder-1", "clinic", 2, 0, 300)]
    assert sim.notes[2].targets == ("mqtt://sc/t/clinic",)
    assert "unacknowledged for 5m" in sim.notes[2].message
    sim.until(600)  # nobody acknowledged: the steps start again
    assert sim.steps()[3] == ("elder-1", "family", 0, 1, 600)
    sim.ack("sos", "elder-1", 610)
    sim.until(3600)
    assert len(sim.notes) == 4  # the acknowledgement stopped it


def test_ack_stops_escalation_before_the_next_step() -> None:
    sim = Sim(SOS)
    sim.event("elder-1", "press", 0)
    sim.ack("sos", "elder-1", 119)
    sim.until(3600)
    assert [n.group for n in sim.notes] == ["family"]
    assert sim.engine.next_deadline() is None


def test_resolution_tells_every_group_that_was_told() -> None:
    sim = Sim(SOS)
    (alert,) = sim.event("elder-1", "press", 0)
    sim.until(150)
    sim.event("elder-1", "cancel", 160)
    resolved = [n for n in sim.notes if n.reason is NotifyReason.RESOLVED]
    assert [(n.group, n.id) for n in resolved] == [
        ("family", f"{alert.id}:resolved:family"),
        ("duty_office", f"{alert.id}:resolved:duty_office")]
    assert resolved[0].ts == ms(160)


def test_group_without_contacts_is_still_emitted_with_no_targets() -> None:
    sim = Sim(SOS)
    sim.event("elder-2", "press", 0)  # no family on file for elder-2
    assert sim.notes[0].targets == ()


def test_a_step_due_during_downtime_is_emitted_at_once_and_never_twice() -> None:
    sim = Sim(SOS)
    sim.event("elder-1", "press", 0)
    sim.until(60)
    saved = sim.engine.snapshot()  # the gateway stops here, at 60 s
    assert sim.engine.take_notifications() == []

    again = RuleEngine(pack_from_text(SOS), DIRECTORY, CONTACTS)
    again.restore(saved)
    assert again.next_deadline() == ms(120)
    again.on_time(ms(400))  # back at 400 s: the 2 min and 5 min steps are overdue
    notes = again.take_notifications()
    assert [(n.group, n.step, n.ts) for n in notes] == [("duty_office", 1, ms(120)),
                                                         ("clinic", 2, ms(300))]
    again.on_time(ms(401))
    assert again.take_notifications() == []
    # and a second restart from the state after those steps emits nothing again
    third = RuleEngine(pack_from_text(SOS), DIRECTORY, CONTACTS)
    third.restore(again.snapshot())
    third.on_time(ms(500))
    assert third.take_notifications() == []


def test_whole_repeat_rounds_missed_in_downtime_collapse_into_the_latest() -> None:
    sim = Sim(SOS)
    sim.event("elder-1", "press", 0)
    saved = sim.engine.snapshot()
    again = RuleEngine(pack_from_text(SOS), DIRECTORY, CONTACTS)
    again.restore(saved)
    again.on_time(ms(3 * 3600))  # three hours down
    notes = again.take_notifications()
    rounds = [(n.step, n.round) for n in notes]
    # round 0 complete (nothing of the first escalation is skipped), then only round 18
    assert rounds == [(1, 0), (2, 0), (0, 18)]
    assert len(set(n.id for n in notes)) == len(notes)


def test_notifications_taken_late_are_kept_in_the_snapshot() -> None:
    sim = Sim(SOS)
    sim.engine.on_event(make_event(DIRECTORY["elder-1"].kind, "elder-1", "press", T0))
    saved = sim.engine.snapshot()  # taken before take_notifications(): nothing is lost
    again = RuleEngine(pack_from_text(SOS), DIRECTORY, CONTACTS)
    again.restore(saved)
    assert [n.group for n in again.take_notifications()] == ["family"]


def test_default_pack_elder_and_smoke_policies() -> None:
    sim = Sim(default_pack())
    sim.event("elder-1", "press", 0)
    sim.event("smoke-5-1", "alarm", 0)
    sim.until(400)
    assert sim.steps() == [
        ("elder-1", "family", 0, 0, 0),
        ("smoke-5-1", "duty_office", 0, 0, 0),
        ("smoke-5-1", "property_manager", 1, 0, 0),
        ("smoke-5-1", "fire_warden", 2, 0, 60),
        ("elder-1", "duty_office", 1, 0, 120),
        ("elder-1", "clinic", 2, 0, 300),
        ("smoke-5-1", "duty_office", 0, 1, 300),
        ("smoke-5-1", "property_manager", 1, 1, 300),
        ("smoke-5-1", "fire_warden", 2, 1, 360),
    ]
