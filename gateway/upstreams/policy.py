"""A sharing policy: what one upstream receives of the compound's records, and in which form.

A policy file (sharing/*.yaml) is a list of rules; a record leaves only when a rule selects
it (default deny), the first that does, and then only the fields that rule keeps. The file
is read with line numbers (rules.source), and every mistake is reported with its line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gateway.core.kinds import MODELS
from gateway.core.model import (
    RECORD_PRIVACY,
    AlertState,
    DataClass,
    DeviceKind,
    Severity,
)
from rules.problems import RuleError, RuleProblem
from rules.rule_reader import NodeReader, unknown_key
from rules.source import Node, parse_duration, parse_yaml, read_yaml

E = TypeVar("E", bound=enum.StrEnum)


class PolicyError(RuleError):
    """A policy that cannot be used; `problems` names every mistake by file and line."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        self.args = (f"{len(problems)} problem(s) in the sharing policies\n{lines}",)


class Precision(enum.StrEnum):
    """How precisely a record's place leaves: the finer levels include the coarser."""

    UNIT = "unit"  # building, unit and floor
    FLOOR = "floor"  # building and floor
    BUILDING = "building"
    COMPOUND = "compound"  # no place beyond the site


class Basis(enum.StrEnum):
    """The legal bases PIPL gives for sharing sensitive personal data."""

    CONSENT = "consent"
    LAW = "law"  # a statutory duty (fire law, public health)
    VITAL_INTEREST = "vital_interest"  # life, health or property in an emergency


class RecordType(enum.StrEnum):
    EVENT = "event"
    ALERT = "alert"


# the fields a record offers a policy (besides an event's own fields)
COMMON_FIELDS = ("id", "ts", "rec", "site", "kind", "device", "building", "unit", "floor")
EVENT_FIELDS = ("type", "cls")
ALERT_FIELDS = ("rule", "state", "severity", "since", "value", "message", "by", "cause")
PLACE_FIELDS = ("building", "unit", "floor")
GROUP_FIELDS = ("building", "unit", "floor", "kind", "type", "rule", "state")
TIME_FIELDS = ("ts", "since")

_RULE_KEYS = ("id", "description", "select", "fields", "pseudonymise", "place", "round",
              "delay", "aggregate", "basis", "reference")
_SELECT_KEYS = ("records", "kind", "type", "rule", "severity", "state", "devices", "tags",
                "building")
_AGGREGATE_KEYS = ("period", "by")
_TOP_KEYS = ("description", "rules")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records a rule takes; None: any."""

    records: frozenset[RecordType] = frozenset(RecordType)
    kinds: frozenset[DeviceKind] | None = None
    types: frozenset[str] | None = None  # event types
    rules: frozenset[str] | None = None  # alert rule ids
    severities: frozenset[Severity] | None = None
    states: frozenset[AlertState] | None = None
    devices: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # a device with any of them
    buildings: frozenset[str] | None = None

    @property
    def kinds_or_all(self) -> frozenset[DeviceKind]:
        return self.kinds if self.kinds is not None else frozenset(DeviceKind)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Counts per period and group instead of single records."""

    period_ms: int
    by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SharingRule:
    id: str
    line: int
    select: Selection
    fields: tuple[str, ...]  # kept in clear
    pseudonymise: tuple[str, ...]  # kept as this upstream's pseudonym
    place: Precision = Precision.BUILDING
    round_ms: int = 0
    delay_ms: int = 0
    aggregate: Aggregate | None = None
    basis: Basis | None = None
    reference: str = ""

    @property
    def basis_text(self) -> str:
        return f"{self.basis.value}: {self.reference}" if self.basis is not None else ""


@dataclass(frozen=True, slots=True)
class Policy:
    file: Path
    description: str
    rules: tuple[SharingRule, ...]

    @property
    def pseudonymises(self) -> bool:
        return any(rule.pseudonymise for rule in self.rules)


@dataclass(frozen=True, slots=True)
class Exposure:
    """A personal field one rule may send: in clear or as a pseudonym."""

    rule: SharingRule
    field: str
    data_class: DataClass
    clear: bool


def load_policy(file: Path) -> Policy:
    """The policy in `file`; PolicyError naming every problem."""
    root, problems = read_yaml(file)
    return _policy(root, problems, file)


def policy_from_text(text: str, file: Path = Path("<policy>")) -> Policy:
    root, problems = parse_yaml(text, file)
    return _policy(root, problems, file)


def policy_files(path: Path) -> list[Path]:
    """`path` itself, or the *.yaml files of the directory `path`, in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    return [path]


def _policy(root: Node | None, problems: list[RuleProblem], file: Path) -> Policy:
    problems = list(problems)
    rules: list[SharingRule] = []
    description = ""
    if root is not None and not isinstance(root.value, dict):
        problems.append(RuleProblem(file, root.line, None,
                                    "a sharing policy is a mapping with description: and rules:"))
    elif root is not None and isinstance(root.value, dict):
        for key in root.value:
            if key not in _TOP_KEYS:
                problems.append(RuleProblem(file, root.key_lines[key], None,
                                            unknown_key(key, _TOP_KEYS)))
        text = root.value.get("description")
        if text is not None and isinstance(text.value, str):
            description = text.value
        listed = root.value.get("rules")
        if listed is None or not isinstance(listed.value, list):
            problems.append(RuleProblem(file, listed.line if listed else root.line, None,
                                        "rules: is a list (an empty list shares nothing)"))
        else:
            seen: dict[str, int] = {}
            for node in listed.value:
                reader = _RuleReader(file, node)
                rule = reader.read()
                problems += reader.problems
                if rule is None:
                    continue
                if rule.id in seen:
                    problems.append(RuleProblem(file, rule.line, rule.id,
                                                f"duplicate id (first on line {seen[rule.id]})"))
                    continue
                seen[rule.id] = rule.line
                rules.append(rule)
    policy = Policy(file, description, tuple(rules))
    problems += basis_problems(policy)
    if problems:
        raise PolicyError(sorted(problems))
    return policy


def exposures(rule: SharingRule) -> list[Exposure]:
    """The personal fields `rule` may let out, by what the kinds' models declare."""
    if rule.aggregate is not None:
        return []  # counts per place and period: nobody in them
    out: dict[tuple[str, DataClass], bool] = {}

    def expose(field: str, data_class: DataClass) -> None:
        clear = field in rule.fields
        if clear or field in rule.pseudonymise:
            out[(field, data_class)] = out.get((field, data_class), False) or clear

    for name, data_class in RECORD_PRIVACY.items():
        expose(name, data_class)
    events = RecordType.EVENT in rule.select.records
    alerts = RecordType.ALERT in rule.select.records
    for kind in sorted(rule.select.kinds_or_all):
        model = MODELS[kind]
        for name, data_class in model.privacy.items():
            expose(name, data_class)
        if events:
            types = rule.select.types
            for event, data_class in model.sensitive_events.items():
                if types is None or event in types:
                    expose("type", data_class)
        if alerts and model.alert_class is not None:
            expose("rule", model.alert_class)
            expose("state", model.alert_class)
    return [Exposure(rule, field, data_class, clear)
            for (field, data_class), clear in sorted(out.items())]


def basis_problems(policy: Policy) -> list[RuleProblem]:
    """A sensitive field in clear needs a legal basis named by its rule."""
    problems = []
    for rule in policy.rules:
        if rule.basis is not None:
            continue
        for e in exposures(rule):
            if e.clear and e.data_class.sensitive:
                problems.append(RuleProblem(
                    policy.file, rule.line, rule.id,
                    f"field {e.field!r} ({e.data_class.value}, sensitive) would leave in "
                    "clear without a legal basis: add basis: consent|law|vital_interest "
                    "with reference:, or pseudonymise or drop the field"))
    return problems


class _RuleReader(NodeReader):
    """Reads one rule of a policy, collecting every problem."""

    def read(self) -> SharingRule | None:
        node = self.node
        if not isinstance(node.value, dict):
            self.report(node.line, "a sharing rule is a mapping with id:, select:, fields: ...")
            return None
        spec = node.value
        id_node = spec.get("id")
        if id_node is None or not isinstance(id_node.value, str) or not id_node.value:
            self.report(id_node.line if id_node else node.line, "id: is required (text)")
        else:
            self.rule_id = id_node.value
        for key in spec:
            if key not in _RULE_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _RULE_KEYS))
        start = len(self.problems)
        select = self._select(spec.get("select"))
        fields = self._names(spec.get("fields"), "fields")
        pseudonymise = self._names(spec.get("pseudonymise"), "pseudonymise")
        place = self._choice(spec.get("place"), Precision, Precision.BUILDING, "place")
        round_ms = self._duration(spec.get("round"), "round")
        delay_ms = self._duration(spec.get("delay"), "delay")
        aggregate = self._aggregate(spec.get("aggregate"))
        basis = self._choice(spec.get("basis"), Basis, None, "basis")
        reference = spec.get("reference")
        ref_text = ""
        if basis is not None:
            if reference is None or not isinstance(reference.value, str) \
                    or not reference.value.strip():
                self.report(spec["basis"].line, "basis: needs reference: the law, consent "
                                                "record or emergency it rests on")
            else:
                ref_text = reference.value.strip()
        elif reference is not None:
            self.report(reference.line, "reference: goes with basis:")
        overlap = set(fields) & set(pseudonymise)
        if overlap:
            self.report(node.line, f"{', '.join(sorted(overlap))}: either in clear (fields:) "
                                   "or pseudonymised, not both")
        if aggregate is not None and (fields or pseudonymise):
            self.report(node.line, "an aggregate sends counts only: no fields: or "
                                   "pseudonymise: (group with aggregate.by)")
        if aggregate is None and not fields and not pseudonymise:
            self.report(node.line, "fields: is required: the fields that leave (all others "
                                   "are dropped)")
        for name in pseudonymise:
            if name in TIME_FIELDS or name in ("rec", "site"):
                self.report(spec["pseudonymise"].line, f"{name!r} cannot be pseudonymised")
        if select is not None and aggregate is not None and RecordType.ALERT in select.records \
                and RecordType.EVENT in select.records:
            self.report(spec["aggregate"].line, "an aggregate counts either events or alerts: "
                                                "select records: [event] or [alert]")
        if len(self.problems) > start or self.rule_id is None or select is None:
            return None
        return SharingRule(id=self.rule_id, line=node.line, select=select, fields=tuple(fields),
                           pseudonymise=tuple(pseudonymise), place=place or Precision.BUILDING,
                           round_ms=round_ms,
                           delay_ms=delay_ms, aggregate=aggregate, basis=basis,
                           reference=ref_text)

    def _select(self, node: Node | None) -> Selection | None:
        if node is None or not isinstance(node.value, dict):
            self.report(node.line if node else self.node.line,
                        "select: is required: {records: [alert], rule: [...]} and the like")
            return None
        spec = node.value
        for key in spec:
            if key not in _SELECT_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _SELECT_KEYS))
        records = self._enums(spec.get("records"), RecordType, "records")
        kinds = self._enums(spec.get("kind"), DeviceKind, "kind")
        types = self._text_set(spec.get("type"), "type")
        if types is not None:
            known = {t for k in (kinds or frozenset(DeviceKind)) for t in MODELS[k].events}
            for name in sorted(types - known):
                self.report(spec["type"].line, f"{name!r} is not an event type of "
                                               f"{', '.join(sorted(kinds or DeviceKind))}")
        return Selection(
            records=records if records is not None else frozenset(RecordType),
            kinds=kinds, types=types, rules=self._text_set(spec.get("rule"), "rule"),
            severities=self._enums(spec.get("severity"), Severity, "severity"),
            states=self._enums(spec.get("state"), AlertState, "state"),
            devices=self._text_set(spec.get("devices"), "devices"),
            tags=self._text_set(spec.get("tags"), "tags"),
            buildings=self._text_set(spec.get("building"), "building"))

    def _aggregate(self, node: Node | None) -> Aggregate | None:
        if node is None:
            return None
        if not isinstance(node.value, dict):
            self.report(node.line, "aggregate: is a mapping {period: 1h, by: [building]}")
            return None
        for key in node.value:
            if key not in _AGGREGATE_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _AGGREGATE_KEYS))
        period = self._duration(node.value.get("period"), "aggregate.period")
        if period <= 0:
            self.report(node.line, "aggregate.period: required, longer than zero")
            return None
        if 86_400_000 % period and period % 86_400_000:
            self.report(node.line, "aggregate.period: must divide a day (15m, 1h, 1d ...)")
            return None
        by = self._names(node.value.get("by"), "aggregate.by")
        for name in by:
            if name not in GROUP_FIELDS:
                self.report(node.value["by"].line, f"aggregate.by: {name!r} is not one of "
                                                   f"{', '.join(GROUP_FIELDS)}")
                return None
        return Aggregate(period, tuple(by))

    # -- values ------------------------------------------------------------------------

    def _text_set(self, node: Node | None, what: str) -> frozenset[str] | None:
        texts = self._texts(node, what)
        return None if texts is None else frozenset(texts)

    def _names(self, node: Node | None, what: str) -> list[str]:
        if node is None:
            return []
        if not isinstance(node.value, list):
            self.report(node.line, f"{what}: is a list of field names")
            return []
        out: list[str] = []
        for item in node.value:
            if not isinstance(item.value, str) or not item.value:
                self.report(item.line, f"{what}: {item.value!r} is not a field name")
            elif item.value in out:
                self.report(item.line, f"{what}: {item.value!r} twice")
            else:
                out.append(item.value)
        return out

    def _enums(self, node: Node | None, kind: type[E], what: str) -> frozenset[E] | None:
        names = self._text_set(node, what)
        if names is None:
            return None
        out: set[E] = set()
        for name in sorted(names):
            try:
                out.add(kind(name))
            except ValueError:
                assert node is not None
                self.report(node.line, f"{what}: {name!r} is not one of "
                                       f"{', '.join(e.value for e in kind)}")
        return frozenset(out)

    def _duration(self, node: Node | None, what: str) -> int:
        if node is None:
            return 0
        try:
            return parse_duration(node.value)
        except ValueError as exc:
            self.report(node.line, f"{what}: {exc}")
            return 0


