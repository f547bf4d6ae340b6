"""Message templates: `{device}`, `{building}`, `{value}`... checked when rules load."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.model import Scalar
from rules.limits import MAX_FORMAT_WIDTH, MAX_MESSAGE_CHARS

PLACEHOLDERS: Mapping[str, str] = {
    "rule": "the rule id",
    "device": "the device whose record moved the alert",
    "devices": "every device taking part, comma separated",
    "key": "what the alert is keyed by: the device id, or e.g. building-3",
    "kind": "the device kind",
    "severity": "the rule's severity",
    "building": "the building of the device or key",
    "unit": "the unit",
    "floor": "the floor",
    "location": "building, unit and floor in words",
    "value": "the value that moved the alert (a reading, a rate, a count, seconds silent)",
    "count": "records counted in the window",
}

_SAMPLE: Mapping[str, Scalar] = {name: "x" for name in PLACEHOLDERS} | {
    "value": 1.5, "count": 2, "floor": 3}
_formatter = string.Formatter()


@dataclass(frozen=True, slots=True)
class Template:
    """A message with placeholders; rendering never fails on a value it was not made for."""

    text: str

    def render(self, values: Mapping[str, Scalar | None]) -> str:
        out: list[str] = []
        for literal, name, spec, conversion in _formatter.parse(self.text):
            out.append(literal)
            if name is None:
                continue
            value = values.get(name)
            shown = "-" if value is None else value
            try:
                out.append(_formatter.format_field(_formatter.convert_field(shown, conversion),
                                                   spec or ""))
            except (ValueError, TypeError):  # e.g. {value:.1f} with a text value
                out.append(str(shown))
        return "".join(out)


def check_template(text: str) -> list[str]:
    """What is wrong with `text` as a template; empty when nothing is."""
    if len(text) > MAX_MESSAGE_CHARS:
        return [f"a message is at most {MAX_MESSAGE_CHARS} characters, not {len(text)}"]
    problems: list[str] = []
    try:
        parts = list(_formatter.parse(text))
    except ValueError as exc:
        return [f"message {text!r} is not a valid template: {exc} (write {{{{ for a brace)"]
    for _literal, name, spec, _conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            problems.append(f"unknown placeholder {{{name}}} in the message (known: "
                            f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
            continue
        if spec:
            wide = _too_wide(spec)
            if wide:
                problems.append(f"placeholder {{{name}:{spec}}}: {wide}")
                continue
            try:
                format(_SAMPLE[name], spec)
            except ValueError as exc:
                problems.append(f"placeholder {{{name}:{spec}}}: {exc}")
    return problems


# the standard format specification: [[fill]align][sign][z][#][0][width][,_][.precision][type]
_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d*))?\w?",
                   re.DOTALL)


def _too_wide(spec: str) -> str | None:
    """What makes `spec` fill more than MAX_FORMAT_WIDTH characters; None when nothing does."""
    match = _SPEC.fullmatch(spec)
    if match is None:
        return None  # not a valid specification: format() says why
    for part in ("width", "precision"):
        digits = match.group(part)
        # compared as text: int() of thousands of digits is slow, then refused
        if digits and (len(digits.lstrip("0")) > 3 or int(digits) > MAX_FORMAT_WIDTH):
            return f"the {part} is at most {MAX_FORMAT_WIDTH}"
    return None
