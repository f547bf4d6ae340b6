"""The rule engine: records and time in, alert transitions and notification intents out."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from gateway.core.config import Location
from gateway.core.model import AckCommand, Alert, DeviceEvent, DeviceKind, Reading, Scalar
from rules.conditions import RATE, Condition
from rules.contacts import Contacts
from rules.definition import READING, Rule, RulePack
from rules.directory import DeviceDirectory, alert_key
from rules.expressions import ValueMismatch, Values
from rules.lifecycle import Lifecycle
from rules.notify import Notify
from rules.problems import RuleError, RuleProblem
from rules.state import STATE_VERSION, EngineState, Hit, Phase, RuleState, Sample, Slot
from rules.state_rows import LEGACY, META, Changes, SavedRows
from rules.state_rows import decode as decode_rows


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalation:
    """Where an active alert's escalation stands."""

    groups: tuple[str, ...]  # the policy's steps, in order
    reached: int  # steps sent in this round
    round: int
    next_at: int | None  # when the next step goes out unless acknowledged; None: no more
    next_group: str | None


@dataclass(frozen=True, slots=True)
class _Judgement:
    """What one record says about one rule for its device."""

    met: bool | None  # None: the record says nothing about the condition
    cleared: bool
    value: Scalar | None
    clear_value: Scalar | None
    at_once: bool = False


class RuleEngine:
    """Evaluates a rule pack over events, readings, acknowledgements and the passing of time.

    It never reads a clock: records carry their time, and `on_time(now_ms)` moves time on
    for timers (`for`, absence, quiet clears, escalation steps); `next_deadline()` says when
    that is next needed. One active alert per (rule, key); a key is a device id or a place
    such as `building-3`. Notification intents collect until `take_notifications()`; take
    them before `snapshot()` and journal both in one transaction.
    """

    def __init__(
        self, pack: RulePack, directory: DeviceDirectory, contacts: Contacts | None = None
    ) -> None:
        _check(pack)
        self._directory = directory
        self._contacts = contacts or Contacts()
        self._state = EngineState()
        self._saved = SavedRows()
        self._touched: set[tuple[str, str]] | None = None  # None: every slot may have changed
        self._install(pack)
        self._state.rules = {r.id: RuleState(fingerprint=r.fingerprint, key=r.key.value)
                             for r in pack.rules}
        self._rebuild_timers()

    # -- records -----------------------------------------------------------------------

    def on_event(self, event: DeviceEvent) -> list[Alert]:
        """Transitions caused by a device event (and by timers due before it)."""
        return self._record(event.kind, event.device, event.id, event.ts, event.type,
                            event.fields)

    def on_reading(self, reading: Reading) -> list[Alert]:
        """Transitions caused by a reading (and by timers due before it)."""
        if self._quiet(reading):
            return []
        return self._record(reading.kind, reading.device, reading.id, reading.ts, READING,
                            reading.values)

    def _quiet(self, reading: Reading) -> bool:
        """Whether `reading` changes nothing, as most do: no timer due before it, and for
        every rule of its kind no slot of its key and a condition it does not meet. Then
        only the engine's time moves to it, as `_record` would have it, in fewer steps."""
        rules = self._quiet_rules.get(reading.kind)
        if rules is None or self._state.owed or self._unstarted:
            return False
        now = self._state.now
        at = reading.ts if now is None or reading.ts > now else now
        if self._timers and self._timers[0][0] <= at:
            return False
        device, values, states = reading.device, reading.values, self._state.rules
        for rule in rules:
            admitted, key = self._admitted.get((rule.id, device)) or self._admitted_key(
                rule, device)
            if not admitted:
                continue
            if key is None or key in states[rule.id].slots:
                return False
            assert rule.condition is not None
            try:
                if rule.condition.test(values):
                    return False
            except KeyError:
                continue  # the reading does not carry what the condition reads
            except Exception:  # counted as an expression error on the way of `_record`
                return False
        if self._life.ended:
            self._life.forget_ended(at)
        self._state.now = at
        return True

    def on_ack(self, ack: AckCommand) -> list[Alert]:
        """Acknowledge the firing alert of `ack.rule` on `ack.device` (a device or place key);
        with `ack.reason`, resolve it by hand if its rule allows that."""
        self._begin()
        at = self._at(ack.ts)
        self._advance(at)
        rule = self._rules.get(ack.rule)
        state = self._state.rules.get(ack.rule)
        slot = state.slots.get(ack.device) if state is not None else None
        if rule is not None and slot is not None:
            if ack.reason is not None:
                self._life.resolve_by_hand(rule, ack.device, slot, ack, at)
            else:
                self._life.acknowledge(rule, ack.device, slot, ack, at)
            self._after(rule, ack.device, slot)
        return self._end()

    def on_time(self, now_ms: int) -> list[Alert]:
        """Transitions of every timer due at or before `now_ms`."""
        self._begin()
        self._advance(self._at(now_ms))
        return self._end()

    def next_deadline(self) -> int | None:
        """When `on_time` next has something to do (epoch ms), or None."""
        while self._timers:
            deadline, rule_id, key = self._timers[0]
            slot = self._slot(rule_id, key)
            rule = self._rules.get(rule_id)
            due = self._life.next_timer(rule, slot) if rule and slot else None
            if due is not None and due[0] == deadline:
                return deadline
            heapq.heappop(self._timers)
            if due is not None and due[0] < deadline:
                # never expected: keep an earlier deadline reachable rather than spin on it
                heapq.heappush(self._timers, (due[0], rule_id, key))
                self._scheduled[(rule_id, key)] = due[0]
                continue
            if self._scheduled.get((rule_id, key)) == deadline:
                del self._scheduled[(rule_id, key)]
        return None

    def take_notifications(self) -> list[Notify]:
        """The notification intents produced since the last call, oldest first."""
        out, self._state.outbox = self._state.outbox, []
        return out

    def escalation(self, rule_id: str, key: str) -> Escalation | None:
        """The escalation of the active alert of `rule_id` on `key`, if it has a policy."""
        rule = self._rules.get(rule_id)
        slot = self._slot(rule_id, key)
        policy = self._pack.escalations.get(rule.escalation or "") if rule else None
        if policy is None or slot is None or slot.alert is None:
            return None
        going = slot.escalating and slot.phase is Phase.FIRING and slot.step < len(policy.steps)
        return Escalation(
            groups=tuple(s.group for s in policy.steps), reached=slot.step, round=slot.round,
            next_at=policy.deadline(slot.alert.since, slot.round, slot.step) if going else None,
            next_group=policy.steps[slot.step].group if going else None)

    def resolvable(self, rule_id: str) -> bool:
        """Whether a person may resolve the alerts of `rule_id` by hand."""
        rule = self._rules.get(rule_id)
        return rule is not None and rule.clear.by_hand

    def knows(self, rule: str) -> bool:
        """Whether `rule` is the id of one of the installed rules."""
        return rule in self._rules

    def active(self) -> list[Alert]:
        """The current state of every alert that is not resolved."""
        return [slot.alert for rule_id in sorted(self._state.rules)
                for _, slot in sorted(self._state.rules[rule_id].slots.items())
                if slot.alert is not None]

    @property
    def counters(self) -> Mapping[str, int]:
        """suppressed (duplicates), damped (flapping), expression_errors, unlocated."""
        return dict(self._state.counters)

    @property
    def suppressed(self) -> int:
        return self._state.counters.get("suppressed", 0)

    # -- persistence and reload ----------------------------------------------------------

    def snapshot(self) -> bytes:
        """Timers, windows, counters, active alerts and escalation progress, as bytes."""
        return msgspec.json.encode(self._state)

    def state_changes(self) -> Changes:
        """The state rows changed since the last call: durable ones (alerts, timers, windows)
        and lazy ones (rate samples, the clock, counters), to journal with the transitions."""
        changes = self._saved.changes(self._state, self._touched)
        self._touched = set()
        return changes

    def restore(self, data: bytes) -> None:
        """Resume from `snapshot()` bytes; alerts of rules that changed or went away since are
        resolved in the next call's transitions."""
        self._resume(msgspec.json.decode(data, type=EngineState))

    def restore_rows(self, rows: Mapping[str, bytes]) -> None:
        """Resume from the rows `state_changes()` gave out (or an older gateway's snapshot);
        without any, from the state of a new engine."""
        if META in rows:
            self._resume(decode_rows(rows))
            self._saved.remember({k: v for k, v in rows.items() if k != LEGACY})
        elif LEGACY in rows:
            self.restore(rows[LEGACY])
        else:
            self._resume(EngineState())
            self._saved.remember({})

    def _resume(self, old: EngineState) -> None:
        if old.v != STATE_VERSION:
            raise ValueError(f"rule state version {old.v}; this gateway reads {STATE_VERSION}")
        rules, old.rules = old.rules, {}
        self._state = old
        self._bind()
        self._reconcile(rules)
        self._state.owed += self._life.alerts
        self._life.alerts = []
        self._rebuild_timers()
        self._touched = None

    def reload(self, pack: RulePack) -> list[Alert]:
        """Switch to `pack`, keeping the state of every rule whose definition is unchanged.

        Raises RuleError, changing nothing, when the pack is inconsistent. An active alert
        of a changed rule stays active when its key and kind still fit; the alerts of
        removed rules are resolved (returned here).
        """
        _check(pack)
        self._begin()
        rules, self._state.rules = self._state.rules, {}
        self._install(pack)
        self._reconcile(rules)
        self._rebuild_timers()
        self._touched = None
        return self._end()

    # -- the work ------------------------------------------------------------------------

    def _install(self, pack: RulePack) -> None:
        self._pack = pack
        self._rules = {r.id: r for r in pack.rules}
        routes: dict[tuple[DeviceKind, str], list[Rule]] = {}
        for rule in pack.rules:
            for kind in sorted(rule.match.kinds):
                for type_ in sorted(rule.match.types | rule.clear.types):
                    routes.setdefault((kind, type_), []).append(rule)
        self._routes = routes
        self._admitted: dict[tuple[str, str], tuple[bool, str | None]] = {}
        # rules whose reading leaves no trace on an empty slot unless it meets the condition
        self._stateless = {r.id for r in pack.rules if r.absence_ms is None and not any(
            c is not None and c.rate_field is not None
            for c in (r.condition, r.clear.condition, r.at_once))}
        # kinds whose readings go only to such rules, with a condition on the values: a
        # reading of one is mostly quiet (`_quiet`)
        self._quiet_rules = {
            kind: rules for (kind, type_), rules in routes.items()
            if type_ == READING and all(
                r.id in self._stateless and r.condition is not None
                and r.condition.rate_per_ms is None for r in rules)}
        self._bind()

    def _bind(self) -> None:
        self._life = Lifecycle(self._state, self._directory, self._contacts,
                               self._pack.escalations)

    def _begin(self) -> None:
        self._life.alerts, self._state.owed = list(self._state.owed), []

    def _end(self) -> list[Alert]:
        out, self._life.alerts = self._life.alerts, []
        return out

    def _at(self, ts: int) -> int:
        # a record older than what the engine has seen counts at the engine's time
        return ts if self._state.now is None else max(ts, self._state.now)

    def _record(self, kind: DeviceKind, device: str, record_id: str, ts: int, type_: str,
                values: Values) -> list[Alert]:
        self._begin()
        at = self._at(ts)
        self._advance(at)
        for rule in self._routes.get((kind, type_), ()):
            admitted, key = self._admitted_key(rule, device)
            if not admitted:
                continue
            if key is None:
                self._life.count("unlocated")
                continue
            slots = self._state.rules[rule.id].slots
            slot = slots.get(key)
            if slot is None:
                if type_ == READING and rule.id in self._stateless and rule.condition \
                        is not None and not self._check(rule.condition, values, {}):
                    # most readings: a key with nothing going on, and a reading that does
                    # not meet the condition, leave nothing behind (the slot would be made,
                    # judged and forgotten again)
                    continue
                slot = slots[key] = Slot()
            if rule.absence_ms is not None:
                if type_ in rule.match.types:
                    self._seen(rule, key, slot, kind, device, record_id, at)
            else:
                self._apply(rule, key, slot, kind, device, record_id, ts, at, type_, values)
            self._after(rule, key, slot)
        self._advance(at)  # e.g. an escalation step due at once
        return self._end()

    def _apply(self, rule: Rule, key: str, slot: Slot, kind: DeviceKind, device: str,
               record_id: str, ts: int, at: int, type_: str, values: Values) -> None:
        if type_ == READING:
            judged = self._judge_reading(rule, slot, device, ts, values)
        else:
            judged = self._judge_event(rule, type_, values)
        if judged is None:
            return
        meets, counted = False, True
        if judged.met:
            meets = True
            if rule.consecutive > 1:
                slot.streak[device] = slot.streak.get(device, 0) + 1
                meets = slot.streak[device] >= rule.consecutive or judged.at_once
            if meets:
                slot.members[device] = judged.value
                slot.last_met, slot.device, slot.kind, slot.value = at, device, kind, judged.value
                if rule.count is not None:
                    slot.hits.append(Hit(at, device))
                    slot.hits = [h for h in slot.hits if h.ts >= at - rule.count.within_ms]
                    seen = len({h.device for h in slot.hits}) if rule.count.distinct \
                        else len(slot.hits)
                    counted = seen >= rule.count.at_least
                    slot.value = seen
        elif judged.met is False:
            slot.streak.pop(device, None)
            if slot.phase in (Phase.IDLE, Phase.PENDING):
                # `for` needs the condition to hold throughout
                slot.members.pop(device, None)
        if judged.cleared:
            slot.streak.pop(device, None)
            slot.members.pop(device, None)
        if slot.phase is Phase.IDLE:
            if meets and counted:
                self._life.start(rule, key, slot, at, record_id, at_once=judged.at_once)
        elif slot.phase is Phase.PENDING:
            if not slot.members:
                slot.phase, slot.deadline, slot.cause = Phase.IDLE, None, None
            elif meets and judged.at_once:
                self._life.fire(rule, key, slot, at, record_id)
        else:
            if meets and type_ != READING:
                # a repeated event; readings above a threshold are not duplicates, only news
                self._life.count("suppressed")
            if (judged.cleared or judged.met is False) and not slot.members:
                slot.device = device
                self._life.settle(rule, key, slot, at, record_id, judged.clear_value, by=device)

    def _seen(self, rule: Rule, key: str, slot: Slot, kind: DeviceKind, device: str,
              record_id: str, at: int) -> None:
        slot.last_seen, slot.kind, slot.device = at, kind, device
        self._unstarted.discard((rule.id, key))
        if slot.phase is Phase.PENDING:
            slot.members, slot.phase, slot.deadline, slot.cause = {}, Phase.IDLE, None, None
        elif slot.phase in (Phase.FIRING, Phase.ACKNOWLEDGED):
            slot.members = {}
            self._life.settle(rule, key, slot, at, record_id, 0, by=device)

    def _judge_event(self, rule: Rule, type_: str, values: Values) -> _Judgement | None:
        if type_ in rule.clear.types:
            return _Judgement(None, True, None, 0)
        # with neither a clear event nor a quiet time, an event is over as soon as it happened
        # (a latch then holds the alert until someone acknowledges it)
        momentary = not rule.clear.types and rule.clear.after_ms is None
        if rule.condition is None:
            return _Judgement(True, momentary, 1, 0)
        met = self._check(rule.condition, values, {})
        if met is None:
            return None
        return _Judgement(met, momentary and met, self._value(rule.condition, values, {}, 1), 0)

    def _judge_reading(self, rule: Rule, slot: Slot, device: str, ts: int,
                       values: Values) -> _Judgement | None:
        slopes = self._slopes(rule, slot, device, ts, values)
        condition = rule.condition
        assert condition is not None  # the loader insists on one for readings
        met = self._check(condition, values, slopes)
        if met is None:
            return None
        clear = rule.clear
        if clear.condition is not None:
            cleared = self._check(clear.condition, values, slopes) is True
            clear_value = self._value(clear.condition, values, slopes, None)
        else:
            # without a clear condition, event or quiet time, the condition going false clears
            cleared = not met and not clear.types and clear.after_ms is None
            clear_value = self._value(condition, values, slopes, None)
        at_once = rule.at_once is not None and self._check(rule.at_once, values, slopes) is True
        return _Judgement(met, cleared, self._value(condition, values, slopes, None),
                          clear_value, at_once)

    def _slopes(self, rule: Rule, slot: Slot, device: str, ts: int,
                values: Values) -> dict[str, float]:
        """Change per millisecond of each field a rate condition of `rule` reads."""
        slopes: dict[str, float] = {}
        for condition in (rule.condition, rule.clear.condition, rule.at_once):
            field = condition.rate_field if condition is not None else None
            if field is None or field in slopes:
                continue
            value = values.get(field)
            if not isinstance(value, int | float):
                continue
            sample_key = f"{device}/{field}"
            previous = slot.samples.get(sample_key)
            if previous is not None and ts <= previous.ts:
                continue  # out of order or repeated: no rate from it
            slot.samples[sample_key] = Sample(ts, float(value))
            if previous is not None:
                slopes[field] = (float(value) - previous.value) / (ts - previous.ts)
        return slopes

    def _check(self, condition: Condition, values: Values,
               slopes: Mapping[str, float]) -> bool | None:
        try:
            return condition.test(self._view(condition, values, slopes))
        except KeyError:
            return None  # the record does not carry what the condition reads
        except (ValueMismatch, TypeError, ArithmeticError, ValueError):
            self._life.count("expression_errors")
            return None

    def _value(self, condition: Condition, values: Values, slopes: Mapping[str, float],
               default: Scalar | None) -> Scalar | None:
        if condition.value is None:
            return default
        try:
            return condition.value(self._view(condition, values, slopes))
        except (KeyError, TypeError):
            return default

    @staticmethod
    def _view(condition: Condition, values: Values, slopes: Mapping[str, float]) -> Values:
        if condition.rate_per_ms is None:
            return values
        field = condition.rate_field
        if field is None or field not in slopes:
            return {}
        return {RATE: slopes[field] * condition.rate_per_ms}

    # -- time ----------------------------------------------------------------------------

    def _advance(self, target: int) -> None:
        if self._life.ended:  # most records: no resolution the time has not passed yet
            self._life.forget_ended(target)
        if self._unstarted:
            # absence is measured from the first moment the engine knows the time
            for rule_id, device in sorted(self._unstarted):
                slot = self._state.rules[rule_id].slots.setdefault(device, Slot())
                if slot.last_seen is None:
                    slot.last_seen = target
                    info = self._directory.get(device)
                    slot.kind = info.kind if info is not None else None
                self._after(self._rules[rule_id], device, slot)
            self._unstarted.clear()
        while self._timers and self._timers[0][0] <= target:
            deadline, rule_id, key = heapq.heappop(self._timers)
            if self._scheduled.get((rule_id, key)) == deadline:
                del self._scheduled[(rule_id, key)]
            rule = self._rules.get(rule_id)
            found = self._slot(rule_id, key)
            if rule is None or found is None:
                continue
            due = self._life.next_timer(rule, found)
            if due is None or due[0] > deadline:
                continue  # superseded; the slot pushed its new deadline when it changed
            at = due[0] if self._state.now is None else max(due[0], self._state.now)
            self._state.now = at
            self._life.expire(rule, key, found, due[1], at, target)
            self._after(rule, key, found)
        if self._state.now is None or target > self._state.now:
            self._state.now = target

    def _after(self, rule: Rule, key: str, slot: Slot) -> None:
        """Forget an empty slot, or make sure its next deadline is on the heap."""
        if self._touched is not None:
            self._touched.add((rule.id, key))
        if self._empty(rule, slot):
            self._state.rules[rule.id].slots.pop(key, None)
            return
        due = self._life.next_timer(rule, slot)
        if due is not None and self._scheduled.get((rule.id, key)) != due[0]:
            self._scheduled[(rule.id, key)] = due[0]
            heapq.heappush(self._timers, (due[0], rule.id, key))

    def _empty(self, rule: Rule, slot: Slot) -> bool:
        if slot.phase is not Phase.IDLE or slot.members or slot.streak or slot.samples \
                or slot.last_seen is not None:
            return False
        now = self._state.now or 0
        if rule.count is not None:
            slot.hits = [h for h in slot.hits if h.ts >= now - rule.count.within_ms]
            if slot.hits:
                return False
        return slot.last_fire is None or now >= slot.last_fire + rule.min_refire_ms

    def _rebuild_timers(self) -> None:
        self._timers: list[tuple[int, str, str]] = []
        self._scheduled: dict[tuple[str, str], int] = {}
        self._unstarted: set[tuple[str, str]] = set()
        for rule in self._pack.rules:
            slots = self._state.rules[rule.id].slots
            for key, slot in list(slots.items()):
                self._after(rule, key, slot)
            if rule.absence_ms is None:
                continue
            for device, info in self._directory.items():
                if info.kind in rule.match.kinds and rule.match.device(device, info):
                    watched = slots.get(device)
                    if watched is None or watched.last_seen is None:
                        self._unstarted.add((rule.id, device))

    def _reconcile(self, old: dict[str, RuleState]) -> None:
        """Fill the state for the installed pack from `old`, the state of the previous rules."""
        at = self._state.now or 0
        for rule in self._pack.rules:
            previous = old.pop(rule.id, None)
            if previous is not None and previous.fingerprint == rule.fingerprint:
                self._state.rules[rule.id] = previous
                continue
            state = RuleState(fingerprint=rule.fingerprint, key=rule.key.value)
            self._state.rules[rule.id] = state
            for key, slot in sorted((previous.slots if previous else {}).items()):
                if slot.alert is None:
                    continue
                if previous is not None and previous.key == rule.key.value \
                        and slot.alert.kind in rule.match.kinds:
                    state.slots[key] = self._carried(rule, slot)
                else:
                    self._life.drop(rule.id, key, slot, at, "changed")
        for rule_id, previous in sorted(old.items()):
            for key, slot in sorted(previous.slots.items()):
                self._life.drop(rule_id, key, slot, at, "was removed")

    def _carried(self, rule: Rule, slot: Slot) -> Slot:
        """An active alert kept across a rule change; its timers and windows start afresh."""
        policy = self._pack.escalations.get(rule.escalation or "")
        step, round_ = slot.step, slot.round
        escalating = slot.escalating and policy is not None
        if policy is not None and step >= len(policy.steps):
            step, round_ = 0, round_ + 1
            escalating = escalating and policy.repeat_ms is not None
        return Slot(phase=slot.phase, alert=slot.alert, members=slot.members,
                    device=slot.device, kind=slot.kind, value=slot.value,
                    last_met=slot.last_met, last_fire=slot.last_fire, escalating=escalating,
                    step=step, round=round_, notified=slot.notified)

    # -- lookups -------------------------------------------------------------------------

    def _slot(self, rule_id: str, key: str) -> Slot | None:
        state = self._state.rules.get(rule_id)
        return state.slots.get(key) if state is not None else None

    def _admitted_key(self, rule: Rule, device: str) -> tuple[bool, str | None]:
        """Whether `rule` takes records of `device`, and under which alert key (None: the
        device has no such place); both stay as they are while the pack does."""
        cached = self._admitted.get((rule.id, device))
        if cached is None:
            admitted = rule.match.device(device, self._directory.get(device))
            key = alert_key(rule.key, device, self._location(device)) if admitted else None
            cached = self._admitted[(rule.id, device)] = (admitted, key)
        return cached

    def _location(self, device: str) -> Location:
        info = self._directory.get(device)
        return info.location if info is not None else Location()


def _check(pack: RulePack) -> None:
    """Refuse a pack that cannot run: loaded packs pass, hand-built ones might not."""
    missing = [RuleProblem(r.file, r.escalation_line, r.id,
                           f"no escalation policy {r.escalation!r}")
               for r in pack.rules
               if r.escalation is not None and r.escalation not in pack.escalations]
    ids = [r.id for r in pack.rules]
    missing += [RuleProblem(r.file, r.line, r.id, "duplicate rule id")
                for i, r in enumerate(pack.rules) if r.id in ids[:i]]
    if missing:
        raise RuleError(missing)
