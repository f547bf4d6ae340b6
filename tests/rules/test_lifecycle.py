"""pending -> firing -> acknowledged -> resolved; duplicates, flapping, latches, messages."""

from __future__ import annotations

from gateway.core.kinds import make_event
from gateway.core.model import AlertState, Severity, decode, encode
from tests.rules.sim import ACKED, FIRING, RESOLVED, Sim, default_pack

SOS = """
rules:
  - id: sos
    match: {kind: elder_button, type: [press, long_press]}
    clear: {type: cancel}
    severity: critical
    message: "SOS {device} ({location})"
    resolve_message: "SOS over at {device}"
"""


def test_one_alert_through_its_life() -> None:
    sim = Sim(SOS)
    (fired,) = sim.event("elder-1", "press", 0)
    assert (fired.state, fired.severity, fired.kind, fired.device) == (
        FIRING, Severity.CRITICAL, "elder_button", "elder-1")
    assert fired.message == "SOS elder-1 (building 3, unit 1, floor 5)"
    (acked,) = sim.ack("sos", "elder-1", 30, by="duty")
    assert (acked.id, acked.state, acked.by, acked.since) == (fired.id, ACKED, "duty",
                                                              fired.since)
    assert sim.ack("sos", "elder-1", 31) == []  # already acknowledged
    (resolved,) = sim.event("elder-1", "cancel", 60)
    assert (resolved.id, resolved.state, resolved.message, resolved.value) == (
        fired.id, RESOLVED, "SOS over at elder-1", 0)
    # the cancel came from the button: the resolution names it, not the earlier acknowledger
    assert resolved.by == "elder-1"
    assert sim.engine.active() == []
    # the transitions are ordinary alerts: same JSON as ever, no pending state in it
    assert all(decode(encode(a)) == a for a in sim.alerts)
    assert {a.state for a in sim.alerts} <= set(AlertState)


def test_duplicates_are_suppressed_and_a_new_alert_follows_resolution() -> None:
    sim = Sim(SOS)
    first = sim.event("elder-1", "press", 0)[0]
    assert sim.event("elder-1", "long_press", 5) == []
    assert sim.engine.suppressed == 1
    sim.event("elder-1", "cancel", 10)
    second = sim.event("elder-1", "press", 20)[0]
    assert second.id != first.id
    assert len(sim.engine.active()) == 1


def test_clear_event_without_an_alert_does_nothing() -> None:
    sim = Sim(SOS)
    assert sim.event("elder-1", "cancel", 0) == []
    assert sim.ack("sos", "elder-1", 1) == []
    assert sim.ack("unknown.rule", "elder-1", 2) == []


def test_flapping_is_damped_by_min_refire() -> None:
    sim = Sim("""
rules:
  - id: door
    match: {kind: access, type: forced_open}
    clear: {type: door_closed}
    min_refire: 60s
    message: "forced"
""")
    sim.event("door-1", "forced_open", 0)
    sim.event("door-1", "door_closed", 5)
    sim.event("door-1", "forced_open", 10)  # held back: within 60 s of the last firing
    sim.event("door-1", "door_closed", 15)  # ...and it went away: never fired
    sim.event("door-1", "forced_open", 30)
    assert sim.states() == [("door", "door-1", FIRING, 0), ("door", "door-1", RESOLVED, 5)]
    sim.until(60)  # still forced open when the minute is over: it fires now
    assert sim.states()[-1] == ("door", "door-1", FIRING, 60)
    assert sim.engine.counters["damped"] == 2


def test_latched_alert_resolves_only_when_acknowledged() -> None:
    sim = Sim("""
rules:
  - id: duress
    match: {kind: access, type: duress}
    clear: {latch: true}
    severity: critical
    message: "duress"
""")
    sim.event("door-1", "duress", 0)
    sim.until(3600)
    assert sim.states() == [("duress", "door-1", FIRING, 0)]
    acked, resolved = sim.ack("duress", "door-1", 3601, by="guard")
    assert sim.states()[1:] == [("duress", "door-1", ACKED, 3601),
                                ("duress", "door-1", RESOLVED, 3601)]
    assert (acked.by, resolved.by) == ("guard", "guard")  # the ack released the latch


def test_latched_alert_waits_for_its_clear_after_the_ack() -> None:
    sim = Sim("""
rules:
  - id: fire
    match: {kind: smoke, type: alarm}
    clear: {type: alarm_cleared, latch: true}
    message: "fire"
""")
    sim.event("smoke-3-1", "alarm", 0)
    sim.event("smoke-3-1", "alarm_cleared", 10)  # cleared, but nobody has seen it yet
    assert sim.states() == [("fire", "smoke-3-1", FIRING, 0)]
    sim.ack("fire", "smoke-3-1", 20)
    assert sim.states()[-1] == ("fire", "smoke-3-1", RESOLVED, 20)
    sim.event("smoke-3-1", "alarm", 30)
    sim.ack("fire", "smoke-3-1", 40)
    assert sim.states()[-1] == ("fire", "smoke-3-1", ACKED, 40)
    sim.event("smoke-3-1", "alarm_cleared", 50)
    assert sim.states()[-1] == ("fire", "smoke-3-1", RESOLVED, 50)


def test_quiet_time_clear_moves_with_every_new_trigger() -> None:
    sim = Sim("""
rules:
  - id: denied
    match: {kind: access, type: denied}
    clear: {after: 5m}
    message: "denied"
""")
    sim.event("door-1", "denied", 0)
    sim.ack("denied", "door-1", 100, by="guard")
    sim.event("door-1", "denied", 200)
    assert sim.until(499) == []
    (resolved,) = sim.until(500)
    assert resolved.state is RESOLVED
    assert resolved.by is None  # time ended it: nobody resolved it


def test_pending_is_internal_and_acks_do_not_touch_it() -> None:
    sim = Sim("""
rules:
  - id: held
    match: {kind: access, type: door_opened}
    for: 120s
    clear: {type: door_closed}
    message: "held"
""")
    sim.event("door-1", "door_opened", 0)
    assert sim.engine.active() == []
    assert sim.ack("held", "door-1", 10) == []
    assert sim.engine.next_deadline() is not None
    sim.until(120)
    assert sim.states() == [("held", "door-1", FIRING, 120)]


def test_transitions_never_go_back_in_time() -> None:
    sim = Sim(SOS)
    sim.event("elder-1", "press", 100)
    # a record stamped earlier (a device clock behind) counts after the transition before
    # it: each transition of a key has a time of its own (its own point in the store)
    out = sim.engine.on_event(make_event(sim.alerts[0].kind, "elder-1", "cancel",
                                         sim.alerts[0].ts - 50_000))
    assert out[0].ts == sim.alerts[0].ts + 1


def test_a_keys_transitions_in_one_millisecond_get_times_of_their_own() -> None:
    sim = Sim(SOS)
    (fired,) = sim.event("elder-1", "press", 100)
    (acked,) = sim.ack("sos", "elder-1", 100)
    (resolved,) = sim.event("elder-1", "cancel", 100)
    (again,) = sim.event("elder-1", "press", 100)
    assert [(a.state, a.ts - fired.ts) for a in (fired, acked, resolved, again)] == [
        (FIRING, 0), (ACKED, 1), (RESOLVED, 2), (FIRING, 3)]
    assert again.since == again.ts
    assert again.id != fired.id
    # a later time is kept as it is
    (later,) = sim.event("elder-1", "cancel", 200)
    assert later.ts - fired.ts == 100_000


def test_a_person_resolves_by_hand_where_the_rule_allows_it() -> None:
    sim = Sim(SOS.replace("clear: {type: cancel}", "clear: {type: cancel, by_hand: true}"))
    assert sim.engine.resolvable("sos")
    (fired,) = sim.event("elder-1", "press", 0)
    (resolved,) = sim.ack("sos", "elder-1", 90, by="wang", reason="false press, checked")
    assert (resolved.id, resolved.state, resolved.by) == (fired.id, RESOLVED, "wang")
    assert resolved.message == "SOS elder-1 (building 3, unit 1, floor 5) (resolved by " \
                               "wang: false press, checked)"
    assert sim.engine.active() == []
    assert sim.event("elder-1", "press", 100)[0].state is FIRING  # a new press, a new alert


def test_resolving_by_hand_stops_the_escalation_and_tells_who_was_told() -> None:
    sim = Sim(default_pack())
    sim.event("elder-1", "press", 0)
    sim.until(150)  # family at once, the duty office at 2 min
    sim.ack("elder.sos", "elder-1", 160, by="wang", reason="visited: all well")
    sim.until(3600)
    # no clinic at 5 min: the two groups told are told it is over
    assert [(n.group, n.reason) for n in sim.notes] == [
        ("family", "escalation"), ("duty_office", "escalation"), ("family", "resolved"),
        ("duty_office", "resolved")]


def test_without_by_hand_a_reason_changes_nothing() -> None:
    sim = Sim(SOS)
    assert not sim.engine.resolvable("sos")
    sim.event("elder-1", "press", 0)
    assert sim.ack("sos", "elder-1", 10, reason="tried") == []
    assert sim.states() == [("sos", "elder-1", FIRING, 0)]
