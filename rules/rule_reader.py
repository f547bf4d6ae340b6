"""One rule of a rule file, read and checked part by part: every mistake is collected."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from gateway.core.kinds import MODELS
from gateway.core.model import DEVICE_KINDS, DeviceKind, Severity
from rules.conditions import Condition, build_condition
from rules.definition import READING, Clear, Count, Match, Rule
from rules.directory import KeyBy
from rules.fields import FieldType, common_fields
from rules.problems import RuleProblem
from rules.source import Node, parse_duration
from rules.templates import Template, check_template

# rule ids become MQTT topic levels: no '/', '+' or '#'
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RULE_KEYS = ("id", "description", "match", "condition", "consecutive", "at_once", "for",
              "count", "absence", "clear", "key", "severity", "message", "resolve_message",
              "escalation", "min_refire")
_MATCH_KEYS = ("kind", "type", "devices", "building", "unit", "floor")
_CLEAR_KEYS = ("type", "condition", "after", "latch", "by_hand")
ANY = "any"



C = TypeVar("C", bound=enum.Enum)
D = TypeVar("D")


class NodeReader:
    """Reads one item of an operator's YAML file (a rule, a sharing rule), collecting every
    problem with its line instead of stopping at the first."""

    def __init__(self, file: Path, node: Node) -> None:
        self.file = file
        self.node = node
        self.problems: list[RuleProblem] = []
        self.rule_id: str | None = None

    def report(self, line: int, message: str) -> None:
        self.problems.append(RuleProblem(self.file, line, self.rule_id, message))

    def _texts(self, node: Node | None, what: str) -> list[str] | None:
        """A text or a list of them (numbers taken as text); None when not given."""
        if node is None:
            return None
        items = node.value if isinstance(node.value, list) else [node]
        out: list[str] = []
        for item in items:
            if isinstance(item.value, bool) or not isinstance(item.value, str | int):
                self.report(item.line, f"{what}: {item.value!r} is not text")
                continue
            out.append(str(item.value))
        return out

    def _choice(self, node: Node | None, kind: type[C], default: D, what: str) -> C | D:
        """One of an enumeration's values; `default` when not given or not one of them."""
        if node is None:
            return default
        try:
            if not isinstance(node.value, str):
                raise ValueError(node.value)
            return kind(node.value)
        except ValueError:
            self.report(node.line, f"{what}: {node.value!r} is not one of "
                                   f"{', '.join(str(e.value) for e in kind)}")
            return default


class RuleReader(NodeReader):
    """Reads one rule, collecting every problem instead of stopping at the first."""

    def read(self) -> Rule | None:
        node = self.node
        if not isinstance(node.value, dict):
            self.report(node.line, "a rule is a mapping with id:, match:, message: ...")
            return None
        spec = node.value
        id_node = spec.get("id")
        if id_node is None or not isinstance(id_node.value, str) or not _ID.match(id_node.value):
            self.report(id_node.line if id_node else node.line,
                        "id: is required: letters, digits, '.', '_' or '-' (no '/')")
        else:
            self.rule_id = id_node.value
        for key in spec:
            if key not in _RULE_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _RULE_KEYS))
        start = len(self.problems)
        match = self._match(spec.get("match"))
        kinds = match.kinds if match else frozenset()
        readings = bool(match and READING in match.types)
        fields = common_fields(kinds, readings=readings) if kinds else {}
        absence_ms = self._duration(spec, "absence", positive=True)
        condition = self._condition(spec.get("condition"), fields, readings, match is not None)
        at_once = self._condition(spec.get("at_once"), fields, readings, match is not None)
        for_ms = self._duration(spec, "for") or 0
        consecutive = self._int(spec.get("consecutive"), 1, low=1)
        count = self._count(spec.get("count"))
        clear = self._clear(spec.get("clear"), match, fields, readings)
        key = self._choice(spec.get("key"), KeyBy, KeyBy.DEVICE, "key")
        severity = self._choice(spec.get("severity"), Severity, Severity.MAJOR, "severity")
        message = self._template(spec.get("message"), required=True)
        resolve = self._template(spec.get("resolve_message"), required=False)
        escalation = self._text(spec.get("escalation"), "escalation")
        min_refire_ms = self._duration(spec, "min_refire") or 0
        self._cross_check(spec, match, readings, condition, absence_ms, for_ms, consecutive,
                          at_once, count, clear, key)
        if len(self.problems) > start or self.rule_id is None or match is None \
                or clear is None or message is None:
            return None
        return Rule(
            id=self.rule_id, file=self.file, line=node.line,
            fingerprint=json.dumps(node.plain(), sort_keys=True),
            match=match, condition=condition, clear=clear, for_ms=for_ms,
            consecutive=consecutive, at_once=at_once, count=count, absence_ms=absence_ms,
            key=key, severity=severity, message=message,
            resolve_message=resolve or Template("Resolved: " + message.text),
            escalation=escalation, min_refire_ms=min_refire_ms,
            escalation_line=spec["escalation"].line if "escalation" in spec else node.line,
        )

    # -- parts -----------------------------------------------------------------------

    def _match(self, node: Node | None) -> Match | None:
        if node is None or not isinstance(node.value, dict):
            self.report(node.line if node else self.node.line,
                        "match: is required: {kind: ..., type: ...}")
            return None
        spec = node.value
        for key in spec:
            if key not in _MATCH_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _MATCH_KEYS))
        kinds = self._kinds(spec.get("kind"), node)
        types = self._types(spec.get("type"), node, kinds, "type", allow_any=True)
        if kinds is None or types is None:
            return None
        devices = self._texts(spec.get("devices"), "devices")
        buildings = self._texts(spec.get("building"), "building")
        units = self._texts(spec.get("unit"), "unit")
        floors = self._floors(spec.get("floor"))
        return Match(kinds=kinds, types=types, devices=tuple(devices or ()),
                     buildings=None if buildings is None else frozenset(buildings),
                     units=None if units is None else frozenset(units),
                     floors=floors)

    def _kinds(self, node: Node | None, parent: Node) -> frozenset[DeviceKind] | None:
        if node is None:
            self.report(parent.line, f"match.kind is required ({', '.join(DeviceKind)} or any)")
            return None
        if node.value == ANY:  # every device's kind; the gateway's own events by name only
            return DEVICE_KINDS
        names = self._texts(node, "kind") or []
        kinds: set[DeviceKind] = set()
        for name in names:
            try:
                kinds.add(DeviceKind(name))
            except ValueError:
                self.report(node.line, f"unknown kind {name!r} (known: "
                                       f"{', '.join(DeviceKind)}, any)")
                return None
        return frozenset(kinds) if kinds else None

    def _types(
        self, node: Node | None, parent: Node, kinds: frozenset[DeviceKind] | None, what: str,
        *, allow_any: bool,
    ) -> frozenset[str] | None:
        if node is None:
            self.report(parent.line, f"{what} is required: an event type, a list of them, "
                                     f"or {READING}")
            return None
        names = self._texts(node, what)
        if names is None or kinds is None:
            return None
        if allow_any and names == [ANY]:
            return frozenset({READING, *(t for k in kinds for t in MODELS[k].events)})
        out: set[str] = set()
        for name in names:
            if name == READING:
                out.add(name)
                continue
            lacking = sorted(k for k in kinds if name not in MODELS[k].events)
            if lacking:
                known = sorted(set.intersection(*(set(MODELS[k].events) for k in kinds)))
                self.report(node.line, f"{name!r} is not an event of {', '.join(lacking)} "
                                       f"devices (known: {', '.join(known)}, {READING})")
                return None
            out.add(name)
        if READING in out and len(out) > 1:
            self.report(node.line, f"a rule matches either {READING} or event types, not both")
            return None
        return frozenset(out)

    def _condition(
        self, node: Node | None, fields: Mapping[str, FieldType], readings: bool, checkable: bool
    ) -> Condition | None:
        if node is None or not checkable:
            return None
        condition = build_condition(node, fields, self.report)
        if condition is not None and condition.rate_per_ms is not None and not readings:
            self.report(node.line, "a rate of change is computed from readings: match "
                                   f"type: {READING}")
            return None
        return condition

    def _clear(
        self, node: Node | None, match: Match | None, fields: Mapping[str, FieldType],
        readings: bool,
    ) -> Clear | None:
        if node is None:
            return Clear()
        if isinstance(node.value, str) or (isinstance(node.value, dict)
                                           and ("field" in node.value or "rate" in node.value)):
            condition = self._condition(node, fields, readings, match is not None)
            return Clear(condition=condition) if condition is not None else None
        if not isinstance(node.value, dict):
            self.report(node.line, "clear: is a condition, or a mapping with type, condition, "
                                   "after, latch, by_hand")
            return None
        spec = node.value
        for key in spec:
            if key not in _CLEAR_KEYS:
                self.report(node.key_lines[key], unknown_key(key, _CLEAR_KEYS))
        types: frozenset[str] = frozenset()
        if "type" in spec:
            found = self._types(spec["type"], node, match.kinds if match else None, "clear.type",
                                allow_any=False)
            if found is None:
                return None
            if READING in found:
                self.report(spec["type"].line, "clear.type names event types")
                return None
            types = found
        condition = self._condition(spec.get("condition"), fields, readings, match is not None)
        if "condition" in spec and condition is None:
            return None
        after_ms = self._duration(spec, "after", parent=node)
        latch = spec.get("latch")
        if latch is not None and not isinstance(latch.value, bool):
            self.report(latch.line, "latch: is true or false")
            return None
        by_hand = spec.get("by_hand")
        if by_hand is not None and not isinstance(by_hand.value, bool):
            self.report(by_hand.line, "by_hand: is true or false")
            return None
        return Clear(types=types, condition=condition, after_ms=after_ms,
                     latch=bool(latch and latch.value), by_hand=bool(by_hand and by_hand.value))

    def _count(self, node: Node | None) -> Count | None:
        if node is None:
            return None
        if not isinstance(node.value, dict):
            self.report(node.line, "count: is {at_least: 2, within: 60s}")
            return None
        spec = node.value
        for key in spec:
            if key not in ("at_least", "within", "distinct"):
                self.report(node.key_lines[key], unknown_key(key, ("at_least", "within",
                                                                "distinct")))
        at_least = self._int(spec.get("at_least"), 0, low=1)
        within = self._duration(spec, "within", parent=node, positive=True)
        distinct = spec.get("distinct")
        if distinct is not None and not isinstance(distinct.value, bool):
            self.report(distinct.line, "distinct: is true or false")
        if "at_least" not in spec or within is None:
            self.report(node.line, "count: needs at_least: and within:")
            return None
        return Count(at_least=at_least, within_ms=within,
                     distinct=bool(distinct and distinct.value is True))

    def _cross_check(
        self, spec: dict[str, Node], match: Match | None, readings: bool,
        condition: Condition | None, absence_ms: int | None, for_ms: int, consecutive: int,
        at_once: Condition | None, count: Count | None, clear: Clear | None, key: KeyBy,
    ) -> None:
        line = self.node.line
        if absence_ms is not None:
            for other in ("condition", "for", "count", "consecutive", "at_once", "clear"):
                if other in spec:
                    self.report(self.node.key_lines[other], f"an absence rule takes no {other}: "
                                "it fires on silence and clears on the next record")
            if key is not KeyBy.DEVICE:
                self.report(self.node.key_lines.get("key", line),
                            "an absence rule is keyed by device")
            return
        if match is None or clear is None:
            return
        if READING in match.types and "condition" not in spec:
            self.report(line, f"a rule on {READING}s needs a condition:")
        if not readings and clear.condition is not None:
            self.report(self.node.key_lines.get("clear", line),
                        "a clear condition is tested on readings; an event rule clears with "
                        "clear.type, clear.after or clear.latch")
        if not readings and not (clear.types or clear.after_ms is not None or clear.latch):
            self.report(line, "an event rule needs clear: an event type (type: alarm_cleared), "
                              "a quiet time (after: 10m) or latch: true")
        overlap = clear.types & match.types
        if overlap:
            self.report(self.node.key_lines.get("clear", line),
                        f"{', '.join(sorted(overlap))} both meets and clears the rule")
        if "at_once" in spec and consecutive <= 1 and for_ms == 0:
            self.report(self.node.key_lines["at_once"],
                        "at_once skips consecutive: or for:, and this rule has neither")
        if count is not None and consecutive > 1:
            self.report(self.node.key_lines["count"], "count: and consecutive: do not combine")
        if at_once is not None and count is not None:
            self.report(self.node.key_lines["at_once"], "at_once: and count: do not combine")

    # -- scalars ---------------------------------------------------------------------

    def _duration(self, spec: dict[str, Node], key: str, *, parent: Node | None = None,
                  positive: bool = False) -> int | None:
        node = spec.get(key)
        if node is None:
            return None
        try:
            ms = parse_duration(node.value)
        except ValueError as exc:
            self.report(node.line, f"{key}: {exc}")
            return None
        if positive and ms <= 0:
            self.report(node.line, f"{key}: must be longer than zero")
            return None
        return ms

    def _int(self, node: Node | None, default: int, *, low: int) -> int:
        if node is None:
            return default
        if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < low:
            self.report(node.line, f"{node.value!r} is not a whole number >= {low}")
            return default
        return node.value

    def _text(self, node: Node | None, what: str) -> str | None:
        if node is None:
            return None
        if not isinstance(node.value, str) or not node.value:
            self.report(node.line, f"{what}: is text")
            return None
        return node.value

    def _floors(self, node: Node | None) -> frozenset[int] | None:
        if node is None:
            return None
        items = node.value if isinstance(node.value, list) else [node]
        floors: set[int] = set()
        for item in items:
            if isinstance(item.value, bool) or not isinstance(item.value, int):
                self.report(item.line, f"floor: {item.value!r} is not a whole number")
                continue
            floors.add(item.value)
        return frozenset(floors)

    def _template(self, node: Node | None, *, required: bool) -> Template | None:
        if node is None:
            if required:
                self.report(self.node.line, "message: is required")
            return None
        if not isinstance(node.value, str):
            self.report(node.line, "a message is text")
            return None
        issues = check_template(node.value)
        for issue in issues:
            self.report(node.line, issue)
        return None if issues else Template(node.value)


def unknown_key(key: str, known: Iterable[str]) -> str:
    return f"unknown key {key!r} (known: {', '.join(known)})"
