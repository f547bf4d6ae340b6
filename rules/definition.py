"""A loaded rule pack: rules and escalation policies, checked and compiled."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.model import DeviceKind, Severity
from rules.conditions import Condition
from rules.directory import DeviceInfo, KeyBy
from rules.templates import Template

READING = "reading"  # the match type of telemetry, next to the kinds' event types


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """Which records a rule sees: kinds, devices, places, event types or readings."""

    kinds: frozenset[DeviceKind]
    types: frozenset[str]  # event types, and READING for telemetry
    devices: tuple[str, ...] = ()  # ids or shell-style globs; empty: every device
    buildings: frozenset[str] | None = None
    units: frozenset[str] | None = None
    floors: frozenset[int] | None = None

    def device(self, device: str, info: DeviceInfo | None) -> bool:
        """Whether records of `device` concern this rule (its kind is checked by routing)."""
        if self.devices and not any(fnmatch.fnmatchcase(device, p) for p in self.devices):
            return False
        if self.buildings is None and self.units is None and self.floors is None:
            return True
        if info is None:
            return False
        where = info.location
        return ((self.buildings is None or where.building in self.buildings)
                and (self.units is None or where.unit in self.units)
                and (self.floors is None or where.floor in self.floors))


@dataclass(frozen=True, slots=True, kw_only=True)
class Clear:
    """How an alert ends: clear events, a clear condition (hysteresis), a quiet time.

    A latched alert resolves only once acknowledged as well. `by_hand`: a person may also
    resolve it, giving a reason (the duty office found a false press).
    """

    types: frozenset[str] = frozenset()
    condition: Condition | None = None
    after_ms: int | None = None
    latch: bool = False
    by_hand: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    """At least `at_least` matching records within `within_ms` (from distinct devices)."""

    at_least: int
    within_ms: int
    distinct: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule, checked and compiled; docs/rules.md describes each part."""

    id: str
    file: Path
    line: int
    fingerprint: str  # the definition as written: equal text means equal behaviour
    match: Match
    condition: Condition | None = None  # None: every matching event meets it
    clear: Clear = Clear()
    for_ms: int = 0
    consecutive: int = 1
    at_once: Condition | None = None  # meets the rule without waiting for consecutive/for
    count: Count | None = None
    absence_ms: int | None = None
    key: KeyBy = KeyBy.DEVICE
    severity: Severity = Severity.MAJOR
    message: Template
    resolve_message: Template
    escalation: str | None = None
    escalation_line: int = 0
    min_refire_ms: int = 0

    @property
    def on_readings(self) -> bool:
        return READING in self.match.types


@dataclass(frozen=True, slots=True)
class Step:
    """Notify `group` once the alert has been firing for `after_ms`."""

    after_ms: int
    group: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationPolicy:
    """Steps from the moment an alert fires, repeated every `repeat_ms` until acknowledged."""

    name: str
    steps: tuple[Step, ...]
    repeat_ms: int | None = None

    def deadline(self, since: int, round_: int, step: int) -> int:
        return since + round_ * (self.repeat_ms or 0) + self.steps[step].after_ms


@dataclass(frozen=True, slots=True)
class RulePack:
    """Every rule and escalation policy of a rules directory."""

    rules: tuple[Rule, ...]
    escalations: Mapping[str, EscalationPolicy] = field(default_factory=dict)

    def rule(self, rule_id: str) -> Rule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None
