"""Properties over random record sequences: one alert per key, sane lifecycles, and a
snapshot/restore anywhere changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.kinds import make_event
from gateway.core.model import AckCommand, Alert, AlertState, Reading
from rules.definition import RulePack
from rules.engine import RuleEngine
from rules.loader import pack_from_text
from rules.notify import Notify
from tests.rules.sim import CONTACTS, DIRECTORY, T0

# two rules the quiet readings are tested on by themselves as well
TILT = """\
  - id: tilt
    match: {kind: manhole, type: reading}
    condition: {field: tilt_deg, above: 10}
    for: 3s
    clear: {field: tilt_deg, below: 5}
    min_refire: 20s
    message: "tilt {value}"
    escalation: steps
"""
FEVER = """\
  - id: fever
    match: {kind: temp_gate, type: reading}
    condition: "body_temp_c >= 37.3"
    consecutive: 2
    at_once: "body_temp_c >= 38"
    clear: {after: 2m}
    message: "fever {value}"
"""
ESCALATIONS = """\
escalations:
  steps:
    steps:
      - {after: 0s, notify: duty_office}
      - {after: 1m, notify: family}
    repeat: 3m
"""

PACK = pack_from_text("""
rules:
  - id: sos
    match: {kind: elder_button, type: [press, long_press]}
    clear: {type: cancel}
    message: "sos {device}"
    escalation: steps
  - id: fire
    match: {kind: smoke, type: alarm}
    count: {at_least: 2, within: 60s, distinct: true}
    key: building
    clear: {type: alarm_cleared, latch: true}
    message: "fire {building} {count}"
    escalation: steps
  - id: smoke
    match: {kind: smoke, type: alarm}
    clear: {type: alarm_cleared}
    min_refire: 30s
    message: "smoke {device}"
  - id: held
    match: {kind: access, type: door_opened}
    for: 60s
    clear: {type: door_closed}
    message: "held"
  - id: duress
    match: {kind: access, type: duress}
    clear: {latch: true}
    message: "duress"
""" + TILT + """\
  - id: heat
    match: {kind: smoke, type: reading}
    condition: {rate: temperature_c, per: 1m, above: 8}
    key: building
    message: "heat {value}"
""" + FEVER + """\
  - id: silent
    match: {kind: temp_gate, type: any}
    absence: 5m
    message: "silent"
""" + ESCALATIONS)

EVENTS = {
    "elder-1": ["press", "long_press", "cancel"],
    "smoke-3-1": ["alarm", "alarm_cleared"],
    "smoke-3-2": ["alarm", "alarm_cleared"],
    "smoke-5-1": ["alarm", "alarm_cleared"],
    "door-1": ["door_opened", "door_closed", "duress", "granted"],
    "gate-1": ["passage"],
}
KEYS = [("sos", "elder-1"), ("fire", "building-3"), ("fire", "building-5"),
        ("smoke", "smoke-3-1"), ("held", "door-1"), ("duress", "door-1"),
        ("tilt", "manhole-1"), ("heat", "building-3"), ("fever", "gate-1"),
        ("silent", "gate-1")]


@dataclass(frozen=True)
class Op:
    after_ms: int  # time since the previous operation
    what: str
    device: str = ""
    detail: str = ""  # event: index into the device's event types; reading: the field
    value: float = 0.0


gaps = st.sampled_from([0, 500, 1_000, 3_000, 10_000, 30_000, 61_000, 200_000])
SMOKE = ["smoke-3-1", "smoke-3-2", "smoke-5-1"]
ops = st.one_of(
    # smoke alarms get a strategy of their own: the counting rule needs them close together
    st.builds(Op, gaps, st.just("event"), st.sampled_from(SMOKE), st.sampled_from("0001")),
    st.builds(Op, gaps, st.just("event"), st.sampled_from(sorted(set(EVENTS) - set(SMOKE))),
              st.sampled_from("0123")),
    st.builds(Op, gaps, st.just("reading"), st.just("manhole-1"), st.just("tilt_deg"),
              st.sampled_from([0.0, 4.0, 7.0, 11.0, 20.0])),
    st.builds(Op, gaps, st.just("reading"), st.sampled_from(["smoke-3-1", "smoke-3-2"]),
              st.just("temperature_c"), st.sampled_from([20.0, 25.0, 40.0, 60.0])),
    st.builds(Op, gaps, st.just("reading"), st.just("gate-1"), st.just("body_temp_c"),
              st.sampled_from([36.5, 37.3, 37.6, 38.2])),
    st.builds(Op, gaps, st.just("ack"), st.sampled_from([f"{r}|{k}" for r, k in KEYS])),
    st.builds(Op, gaps, st.just("tick")),
)

Output = list[Alert | Notify]


class Driver:
    """Plays operations the way the runner will, recording every output."""

    def __init__(self, pack: RulePack = PACK) -> None:
        self.pack = pack
        self.engine = RuleEngine(pack, DIRECTORY, CONTACTS)
        self.now = T0
        self.out: Output = []
        self.serial = 0

    def play(self, op: Op) -> None:
        self.now += op.after_ms
        while (due := self.engine.next_deadline()) is not None and due <= self.now:
            self._take(self.engine.on_time(due))
        self.serial += 1
        if op.what == "event":
            types = EVENTS[op.device]
            event = make_event(DIRECTORY[op.device].kind, op.device,
                               types[int(op.detail) % len(types)], self.now)
            # ids of its own making, so that two plays of one sequence compare equal
            self._take(self.engine.on_event(msgspec.structs.replace(event,
                                                                    id=f"e{self.serial}")))
        elif op.what == "reading":
            self._take(self.engine.on_reading(Reading(
                id=f"r{self.serial}", ts=self.now, kind=DIRECTORY[op.device].kind,
                device=op.device, values={op.detail: op.value})))
        elif op.what == "ack":
            rule, key = op.device.split("|")
            self._take(self.engine.on_ack(AckCommand(id=f"a{self.serial}", ts=self.now,
                                                     rule=rule, device=key, by="duty")))
        else:
            self._take(self.engine.on_time(self.now))

    def restart(self) -> None:
        saved = self.engine.snapshot()
        self.engine = RuleEngine(self.pack, DIRECTORY, CONTACTS)
        self.engine.restore(saved)

    def _take(self, alerts: list[Alert]) -> None:
        self.out += alerts
        self.out += self.engine.take_notifications()


def play(sequence: list[Op], restart_at: frozenset[int] | set[int] = frozenset()) -> Output:
    driver = Driver()
    for index, op in enumerate(sequence):
        if index in restart_at:
            driver.restart()
        driver.play(op)
    driver.play(Op(3_600_000, "tick"))
    return driver.out


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=40))
def test_one_active_alert_per_key_and_only_firing_alerts_move_on(sequence: list[Op]) -> None:
    active: dict[tuple[str, str], str] = {}  # (rule, key) -> alert id
    state: dict[str, AlertState] = {}
    for item in play(sequence):
        if not isinstance(item, Alert):
            assert item.alert_id in state, "a notification about an alert that never fired"
            continue
        key = (item.rule, item.device)
        if item.state is AlertState.FIRING:
            assert key not in active, f"two active alerts for {key}"
            assert item.id not in state
            active[key] = item.id
        elif item.state is AlertState.ACKNOWLEDGED:
            assert state.get(item.id) is AlertState.FIRING
        else:
            assert state.get(item.id) in (AlertState.FIRING, AlertState.ACKNOWLEDGED), \
                "resolved an alert that was not firing"
            assert active.pop(key) == item.id
        state[item.id] = item.state


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, min_size=1, max_size=40), st.data())
def test_snapshot_and_restore_anywhere_changes_nothing(sequence: list[Op],
                                                       data: st.DataObject) -> None:
    restarts = data.draw(st.sets(st.integers(min_value=0, max_value=len(sequence) - 1),
                                 min_size=1, max_size=3), label="restarts before")
    assert play(sequence, restarts) == play(sequence)


@settings(max_examples=50, deadline=None)
@given(st.lists(ops, max_size=30))
def test_notification_ids_are_unique(sequence: list[Op]) -> None:
    ids = [n.id for n in play(sequence) if isinstance(n, Notify)]
    assert len(ids) == len(set(ids))


# the fever rule without the gate's absence rule: a gate's readings go to the fever rule
# alone, and most of them take the quiet way (`RuleEngine._quiet`)
FEVER_ALONE = pack_from_text("rules:\n" + FEVER + TILT + ESCALATIONS)


@pytest.mark.parametrize("pack", [PACK, FEVER_ALONE], ids=["all rules", "fever alone"])
@settings(max_examples=300, deadline=None)
@given(sequence=st.lists(ops, min_size=1, max_size=40))
def test_readings_passed_over_on_quiet_keys_change_nothing(pack: RulePack,
                                                           sequence: list[Op]) -> None:
    """A reading that does not meet its rule on a key with nothing going on is passed over
    without a slot, and a reading of a kind whose rules all do so, in one step: the same
    alerts, notifications, state rows, counters and snapshot as when every reading is
    judged in full."""
    quick, full = Driver(pack), Driver(pack)
    assert quick.engine._quiet_rules, "no kind's readings take the quiet way"
    full.engine._stateless = set()  # no rule passes a reading over: each is judged in full
    full.engine._quiet_rules = {}
    for op in [*sequence, Op(3_600_000, "tick")]:
        quick.play(op)
        full.play(op)
        assert quick.engine.state_changes() == full.engine.state_changes()
    assert quick.out == full.out
    assert quick.engine.counters == full.engine.counters
    assert quick.engine.snapshot() == full.engine.snapshot()
