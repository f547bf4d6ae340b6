"""One alert's life: pending -> firing -> acknowledged -> resolved, and its escalation."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping

import msgspec

from gateway.core.config import Location
from gateway.core.model import AckCommand, Alert, AlertState, DeviceKind, Scalar
from rules.contacts import Contacts
from rules.definition import EscalationPolicy, Rule
from rules.directory import DeviceDirectory, KeyBy
from rules.notify import Notify, NotifyReason
from rules.source import format_duration
from rules.state import EngineState, Phase, Slot


class Timer(enum.IntEnum):
    """What a slot waits for; at equal deadlines the lower value goes first."""

    PENDING = 0
    ABSENCE = 1
    ESCALATION = 2
    QUIET = 3


class Lifecycle:
    """Moves slots between phases and collects the alerts and notifications that produces."""

    def __init__(
        self,
        state: EngineState,
        directory: DeviceDirectory,
        contacts: Contacts,
        escalations: Mapping[str, EscalationPolicy],
    ) -> None:
        self.state = state
        self.directory = directory
        self.contacts = contacts
        self.escalations = escalations
        self.alerts: list[Alert] = []
        # (rule, key) -> the time of its last resolution, while the engine's time is not past
        # it: an alert fired again in that millisecond comes after it (kept in memory only)
        self.ended: dict[tuple[str, str], int] = {}
        self._ended_max = 0

    def count(self, name: str, by: int = 1) -> None:
        self.state.counters[name] = self.state.counters.get(name, 0) + by

    # -- phases ----------------------------------------------------------------------

    def start(self, rule: Rule, key: str, slot: Slot, at: int, cause: str | None,
              *, at_once: bool = False) -> None:
        """The rule is met for `key`: wait for `for`, or fire."""
        if rule.for_ms and not at_once:
            slot.phase, slot.deadline, slot.cause = Phase.PENDING, at + rule.for_ms, cause
        else:
            self.fire(rule, key, slot, at, cause)

    def fire(self, rule: Rule, key: str, slot: Slot, at: int, cause: str | None) -> None:
        if rule.min_refire_ms and slot.last_fire is not None \
                and at < slot.last_fire + rule.min_refire_ms:
            # flapping: hold it back; it fires at the end if still met
            self.count("damped")
            slot.phase, slot.deadline, slot.cause = (Phase.PENDING,
                                                     slot.last_fire + rule.min_refire_ms, cause)
            return
        at = self._after_last(slot, at, self.ended.get((rule.id, key)))
        self.state.fires += 1
        alert = Alert(
            id=_alert_id(rule.id, key, self.state.fires, at),
            ts=at,
            rule=rule.id,
            device=key,
            kind=self._kind(rule, slot, key),
            state=AlertState.FIRING,
            severity=rule.severity,
            since=at,
            value=slot.value,
            message=rule.message.render(self.context(rule, key, slot)),
            cause=cause,
        )
        slot.phase, slot.alert, slot.deadline, slot.cause = Phase.FIRING, alert, None, None
        slot.last_fire = at
        slot.escalating = rule.escalation in self.escalations
        slot.step, slot.round, slot.notified = 0, 0, []
        self.alerts.append(alert)

    def acknowledge(self, rule: Rule, key: str, slot: Slot, ack: AckCommand, at: int) -> None:
        alert = slot.alert
        if slot.phase is not Phase.FIRING or alert is None:
            return
        slot.alert = msgspec.structs.replace(
            alert, ts=self._after_last(slot, at), state=AlertState.ACKNOWLEDGED, by=ack.by,
            cause=ack.id, message=f"{alert.message} (acknowledged by {ack.by})")
        slot.phase = Phase.ACKNOWLEDGED
        slot.escalating = False  # an acknowledgement stops the escalation
        self.alerts.append(slot.alert)
        self.settle(rule, key, slot, at, ack.id, alert.value, by=ack.by)

    def resolve_by_hand(self, rule: Rule, key: str, slot: Slot, ack: AckCommand,
                        at: int) -> None:
        """A person ends the alert, with a reason, where the rule allows it."""
        alert = slot.alert
        if not rule.clear.by_hand or alert is None \
                or slot.phase not in (Phase.FIRING, Phase.ACKNOWLEDGED):
            return
        slot.members = {}
        self.resolve(rule, key, slot, at, ack.id, alert.value,
                     f"{alert.message} (resolved by {ack.by}: {ack.reason})", by=ack.by)

    def settle(self, rule: Rule, key: str, slot: Slot, at: int, cause: str | None,
               value: Scalar | None, *, by: str | None) -> None:
        """Resolve once no device meets the rule any more (and, if latched, once acknowledged).

        `by` is who ends it: the device whose record cleared it, the person whose
        acknowledgement released a latch, None when time did."""
        if slot.phase not in (Phase.FIRING, Phase.ACKNOWLEDGED) or slot.members:
            return
        if rule.clear.latch and slot.phase is Phase.FIRING:
            return
        self.resolve(rule, key, slot, at, cause, value, by=by)

    def resolve(self, rule: Rule, key: str, slot: Slot, at: int, cause: str | None,
                value: Scalar | None, message: str | None = None, *,
                by: str | None = None) -> None:
        alert = slot.alert
        if alert is None:
            return
        ts = self.ended[(rule.id, key)] = self._after_last(slot, at)
        self._ended_max = max(self._ended_max, ts)
        text = message if message is not None else \
            rule.resolve_message.render(self.context(rule, key, slot, value=value))
        # the resolution names who resolved it, not who acknowledged it before
        resolved = msgspec.structs.replace(alert, ts=ts, state=AlertState.RESOLVED, value=value,
                                           message=text, cause=cause, by=by)
        self.alerts.append(resolved)
        devices = self._devices(rule, key, slot)
        for group in slot.notified:
            self.state.outbox.append(Notify(
                id=Notify.resolved_id(alert.id, group), ts=ts, alert_id=alert.id, rule=rule.id,
                device=key, severity=alert.severity, reason=NotifyReason.RESOLVED,
                step=slot.step, round=slot.round, group=group,
                targets=self.contacts.targets(group, devices), message=text))
        slot.phase, slot.alert, slot.deadline, slot.cause = Phase.IDLE, None, None, None
        slot.members, slot.hits = {}, []
        slot.escalating, slot.step, slot.round, slot.notified = False, 0, 0, []

    def drop(self, rule_id: str, key: str, slot: Slot, at: int, why: str) -> None:
        """Resolve an alert whose rule went away, so nothing stays firing for ever."""
        alert = slot.alert
        if alert is None:
            return
        self.alerts.append(msgspec.structs.replace(
            alert, ts=self._after_last(slot, at), state=AlertState.RESOLVED, value=None,
            message=f"{alert.message} (resolved: rule {rule_id} {why})", cause=None, by=None))

    @staticmethod
    def _after_last(slot: Slot, at: int, ended: int | None = None) -> int:
        """`at`, or 1 ms after the key's last transition (its alert's, or the resolution
        of the one before, `ended`) when that was not earlier: a key's transitions have
        times of their own, in order (one point each in the store's series of the key)."""
        last = slot.alert.ts if slot.alert is not None else ended
        return at if last is None or at > last else last + 1

    def forget_ended(self, now: int) -> None:
        """The engine's time moved to `now`: resolutions before it no longer matter."""
        if now > self._ended_max:
            self.ended.clear()

    # -- timers ----------------------------------------------------------------------

    def next_timer(self, rule: Rule, slot: Slot) -> tuple[int, Timer] | None:
        due: list[tuple[int, Timer]] = []
        if slot.phase is Phase.PENDING and slot.deadline is not None:
            due.append((slot.deadline, Timer.PENDING))
        if rule.absence_ms is not None and slot.phase is Phase.IDLE \
                and slot.last_seen is not None:
            due.append((slot.last_seen + rule.absence_ms, Timer.ABSENCE))
        if slot.phase is Phase.FIRING and slot.escalating and slot.alert is not None:
            policy = self.escalations.get(rule.escalation or "")
            if policy is not None:
                due.append((policy.deadline(slot.alert.since, slot.round, slot.step),
                            Timer.ESCALATION))
        if rule.clear.after_ms is not None and slot.members and slot.last_met is not None \
                and slot.phase in (Phase.FIRING, Phase.ACKNOWLEDGED):
            due.append((slot.last_met + rule.clear.after_ms, Timer.QUIET))
        return min(due) if due else None

    def expire(self, rule: Rule, key: str, slot: Slot, timer: Timer, at: int,
               target: int) -> None:
        """Handle `timer`, due at `at`; `target` is the time the engine is moving to."""
        if timer is Timer.PENDING:
            if slot.members:
                self.fire(rule, key, slot, at, slot.cause)
            else:
                slot.phase, slot.deadline, slot.cause = Phase.IDLE, None, None
        elif timer is Timer.ABSENCE:
            assert slot.last_seen is not None
            silent = (at - slot.last_seen) // 1000
            slot.members, slot.device, slot.value = {key: silent}, key, silent
            self.fire(rule, key, slot, at, None)
        elif timer is Timer.ESCALATION:
            self._escalate(rule, key, slot, at, target)
        else:
            slot.members = {}
            self.settle(rule, key, slot, at, None, slot.value, by=None)

    def _escalate(self, rule: Rule, key: str, slot: Slot, at: int, target: int) -> None:
        policy = self.escalations[rule.escalation or ""]
        alert = slot.alert
        assert alert is not None
        step = policy.steps[slot.step]
        message = alert.message
        if at > alert.since:
            message += f" (unacknowledged for {format_duration(at - alert.since)})"
        self.state.outbox.append(Notify(
            id=Notify.step_id(alert.id, slot.step, slot.round), ts=at, alert_id=alert.id,
            rule=rule.id, device=key, severity=alert.severity, reason=NotifyReason.ESCALATION,
            step=slot.step, round=slot.round, group=step.group,
            targets=self.contacts.targets(step.group, self._devices(rule, key, slot)),
            message=message))
        if step.group not in slot.notified:
            slot.notified.append(step.group)
        slot.step += 1
        if slot.step < len(policy.steps):
            return
        if policy.repeat_ms is None:
            slot.escalating = False
            return
        slot.step, slot.round = 0, slot.round + 1
        # after downtime, repeat rounds that are wholly in the past collapse into the latest
        while alert.since + (slot.round + 1) * policy.repeat_ms <= target:
            slot.round += 1

    # -- words -----------------------------------------------------------------------

    def context(self, rule: Rule, key: str, slot: Slot,
                value: Scalar | None = None) -> dict[str, Scalar | None]:
        device = slot.device or key
        location = self._place(rule.key, self._location(device))
        devices = sorted(slot.members) or [device]
        shown = slot.value if value is None else value
        if isinstance(shown, float):
            shown = round(shown, 3)
        return {
            "rule": rule.id,
            "device": device,
            "devices": ", ".join(devices),
            "key": key,
            "kind": str(self._kind(rule, slot, key)),
            "severity": str(rule.severity),
            "building": location.building,
            "unit": location.unit,
            "floor": location.floor,
            "location": location.label(),
            "value": shown,
            "count": len(slot.hits) if rule.count is not None else None,
        }

    @staticmethod
    def _place(by: KeyBy, where: Location) -> Location:
        """Where an alert is: for a building alert, the building, not one device's floor."""
        if by is KeyBy.BUILDING:
            return Location(building=where.building)
        if by is KeyBy.UNIT:
            return Location(building=where.building, unit=where.unit)
        if by is KeyBy.FLOOR:
            return Location(building=where.building, floor=where.floor)
        return where

    def _location(self, device: str) -> Location:
        info = self.directory.get(device)
        return info.location if info is not None else Location()

    def _kind(self, rule: Rule, slot: Slot, key: str) -> DeviceKind:
        if slot.kind is not None:
            return slot.kind
        info = self.directory.get(key)
        if info is not None:
            return info.kind
        return min(rule.match.kinds)

    def _devices(self, rule: Rule, key: str, slot: Slot) -> list[str]:
        if rule.key is KeyBy.DEVICE:
            return [key]
        return sorted({*slot.members, *([slot.device] if slot.device else [])})


def _alert_id(rule_id: str, key: str, serial: int, since: int) -> str:
    """Like gateway.core.model.new_id (time first), but the same on every replay of the journal."""
    digest = hashlib.sha256(f"{rule_id}\0{key}\0{serial}".encode()).hexdigest()[:20]
    return f"{since & 0xFFFFFFFFFFFF:012x}{digest}"
