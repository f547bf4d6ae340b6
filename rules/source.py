"""YAML read into nodes that remember their line, so every problem can name it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gateway.model import Scalar
from rules.problems import RuleProblem

Plain = Scalar | list["Plain"] | dict[str, "Plain"] | None


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value and the 1-based line it starts on."""

    value: Scalar | list[Node] | dict[str, Node] | None
    line: int
    # a literal or folded block scalar starts its text on the line after the key
    block: bool = False
    key_lines: dict[str, int] = field(default_factory=dict)

    def plain(self) -> Plain:
        """The value without line numbers, for fingerprints."""
        if isinstance(self.value, list):
            return [n.plain() for n in self.value]
        if isinstance(self.value, dict):
            return {k: n.plain() for k, n in self.value.items()}
        return self.value

    @property
    def text_line(self) -> int:
        return self.line + 1 if self.block else self.line


def parse_yaml(text: str, file: Path) -> tuple[Node | None, list[RuleProblem]]:
    """The document in `text` as nodes; a syntax error is one problem with its line."""
    try:
        # the reader checks the characters already here: a control character raises
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        return None, [RuleProblem(file, line, None, f"not valid YAML: {exc}")]
    problems: list[RuleProblem] = []
    try:
        root = loader.get_single_node()
        if root is None:
            return None, []
        return _convert(loader, root, file, problems), problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [RuleProblem(file, line, None, f"not valid YAML: {exc.problem}")]
    except yaml.YAMLError as exc:
        return None, [RuleProblem(file, 1, None, f"not valid YAML: {exc}")]
    finally:
        loader.dispose()


def _convert(
    loader: yaml.SafeLoader, node: yaml.Node, file: Path, problems: list[RuleProblem]
) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                # YAML 1.1 reads a bare `on`, `off`, `yes` or `no` as a boolean
                problems.append(RuleProblem(file, key_line, None,
                                            f"key {key!r} must be text (quote it)"))
                continue
            if key in out:
                problems.append(RuleProblem(file, key_line, None,
                                            f"duplicate key {key!r} (first on line "
                                            f"{key_lines[key]})"))
                continue
            out[key] = _convert(loader, value_node, file, problems)
            key_lines[key] = key_line
        return Node(out, line, key_lines=key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(loader, item, file, problems) for item in node.value], line)
    value = loader.construct_object(node)
    if value is not None and not isinstance(value, bool | int | float | str):
        # dates and timestamps are not rule values; keep the text as written
        value = str(node.value)
    style = getattr(node, "style", None)
    return Node(value, line, block=style in ("|", ">"))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


def parse_duration(value: object) -> int:
    """Milliseconds from `90`, `90s`, `1.5m`, `500ms` or `2h`; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return round(value * 1000)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return round(float(match.group(1)) * _UNIT_MS[match.group(2) or "s"])
    raise ValueError(f"{value!r} is not a duration (write e.g. 90s, 2m, 500ms, 1h)")


def format_duration(ms: int) -> str:
    """`120000` as `2m`: the shortest exact way to write a duration."""
    if ms % 3_600_000 == 0 and ms:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
