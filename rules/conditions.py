"""Conditions: a threshold, a range, a rate of change, or an expression, as one closure."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.model import Scalar
from rules.expressions import Values, compile_expression
from rules.fields import FieldType
from rules.problems import Report
from rules.source import Node, parse_duration

RATE = "rate"  # the name a rate condition's test sees its computed rate under

_THRESHOLDS: Mapping[str, tuple[Callable[[Any, Any], bool], str]] = {
    "above": (operator.gt, ">"),
    "at_least": (operator.ge, ">="),
    "below": (operator.lt, "<"),
    "at_most": (operator.le, "<="),
}
_RANGES = ("outside", "inside")


@dataclass(frozen=True, slots=True)
class Condition:
    """A test over a record's values; `value` is what alerts report (None: nothing)."""

    text: str
    names: frozenset[str]
    test: Callable[[Values], bool]
    value: Callable[[Values], Scalar] | None
    rate_per_ms: int | None = None  # set: `test` and `value` see {"rate": change per period}

    @property
    def rate_field(self) -> str | None:
        return next(iter(self.names)) if self.rate_per_ms is not None else None


def build_condition(
    node: Node, fields: Mapping[str, FieldType], report: Report
) -> Condition | None:
    """A condition from an expression string or a threshold/range/rate mapping."""
    if isinstance(node.value, str):
        return _expression(node, fields, report)
    if isinstance(node.value, dict):
        return _mapping(node, node.value, fields, report)
    report(node.line, "a condition is an expression (text) or a mapping with field/rate and "
                      "above/at_least/below/at_most/outside/inside")
    return None


def _expression(node: Node, fields: Mapping[str, FieldType], report: Report) -> Condition | None:
    assert isinstance(node.value, str)
    expr, issues = compile_expression(node.value, fields)
    for issue in issues:
        report(node.text_line + issue.line_offset, issue.message)
    if expr is None:
        return None
    # an expression reports the first number it reads, e.g. tilt_deg in "tilt_deg > 10"
    numbers = sorted(n for n in expr.names if fields.get(n) is FieldType.NUMBER)
    first = _first_name(expr.source, numbers)
    value = None if first is None else _reader(first)
    return Condition(expr.source, expr.names, expr.evaluate, value)


def _first_name(source: str, names: list[str]) -> str | None:
    found = [(source.find(n), n) for n in names if source.find(n) >= 0]
    return min(found)[1] if found else None


def _reader(name: str) -> Callable[[Values], Scalar]:
    return lambda values: values[name]


def _mapping(
    node: Node, spec: dict[str, Node], fields: Mapping[str, FieldType], report: Report
) -> Condition | None:
    ok = True
    known = {"field", "rate", "per", *_THRESHOLDS, *_RANGES}
    for key in spec:
        if key not in known:
            report(node.key_lines[key], f"unknown key {key!r} in a condition (known: "
                                        f"{', '.join(sorted(known))})")
            ok = False
    if ("field" in spec) == ("rate" in spec):
        report(node.line, "a condition mapping needs exactly one of field: or rate:")
        return None
    name_node = spec.get("field") or spec["rate"]
    name = name_node.value
    if not isinstance(name, str) or fields.get(name) is not FieldType.NUMBER:
        if isinstance(name, str) and name in fields:
            report(name_node.line, f"field {name!r} is not a number")
        else:
            report(name_node.line, f"unknown field {name!r} (known numbers: "
                   f"{', '.join(sorted(n for n, t in fields.items() if t is FieldType.NUMBER))})")
        ok = False
    per_ms: int | None = None
    if "rate" in spec:
        per = spec.get("per")
        try:
            per_ms = parse_duration(per.value if per is not None else "60s")
            if per_ms <= 0:
                raise ValueError("must be longer than zero")
        except ValueError as exc:
            report(per.line if per is not None else node.line, f"per: {exc}")
            ok = False
    elif "per" in spec:
        report(node.key_lines["per"], "per: belongs to a rate: condition")
        ok = False
    tests = [k for k in spec if k in _THRESHOLDS or k in _RANGES]
    if len(tests) != 1:
        report(node.line, "give exactly one of above, at_least, below, at_most, outside, "
                          f"inside (found {', '.join(tests) or 'none'})")
        return None
    (how,) = tests
    limit = spec[how]
    subject = RATE if per_ms is not None else str(name)
    label = f"rate of {name} per {per_ms // 1000}s" if per_ms is not None else str(name)
    test: Callable[[Values], bool]
    if how in _THRESHOLDS:
        if not _is_number(limit.value):
            report(limit.line, f"{how}: needs a number, not {limit.value!r}")
            return None
        compare, symbol = _THRESHOLDS[how]
        bound = limit.value

        def test(values: Values) -> bool:
            return compare(_number(values[subject]), bound)

        text = f"{label} {symbol} {bound}"
    else:
        pair = limit.value
        if not (isinstance(pair, list) and len(pair) == 2
                and all(_is_number(p.value) for p in pair)):
            report(limit.line, f"{how}: needs [low, high], two numbers")
            return None
        low, high = (p.value for p in pair)
        assert isinstance(low, int | float)
        assert isinstance(high, int | float)
        if low > high:
            report(limit.line, f"{how}: low {low} is above high {high}")
            return None
        inside = how == "inside"

        def test(values: Values) -> bool:
            return (low <= _number(values[subject]) <= high) is inside

        text = f"{label} {how} [{low}, {high}]"
    if not ok:
        return None
    return Condition(text, frozenset({str(name)}), test, _reader(subject), per_ms)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Scalar) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return value
