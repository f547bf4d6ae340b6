"""YAML read into nodes that remember their line, so every problem can name it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gateway.core.model import Scalar
from gateway.core.operator_files import UnreadableFile, read_operator_file
from rules.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DURATION_MS,
    MAX_FILE_BYTES,
    MAX_NUMBER,
    MAX_TEXT_CHARS,
    MAX_VALUES,
)
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


def read_yaml(file: Path) -> tuple[Node | None, list[RuleProblem]]:
    """The YAML document in `file` as nodes, read within the bounds of rules.limits."""
    try:
        text = read_operator_file(file)
    except UnreadableFile as exc:
        return None, [RuleProblem(file, exc.line, None, exc.message)]
    return parse_yaml(text, file)


def parse_yaml(text: str, file: Path) -> tuple[Node | None, list[RuleProblem]]:
    """The document in `text` as nodes; a syntax error or a limit passed is one problem with
    its line, and the document is refused whole."""
    if len(text) > MAX_FILE_BYTES:
        return None, [RuleProblem(file, 1, None, f"larger than {MAX_FILE_BYTES // 1024} KiB: "
                                                 "not read")]
    try:
        # the reader checks the characters already here: a control character raises
        loader = _BoundedLoader(text)
    except yaml.YAMLError as exc:
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        return None, [RuleProblem(file, line, None, f"not valid YAML: {exc}")]
    problems: list[RuleProblem] = []
    try:
        root = loader.get_single_node()
        if root is None:
            return None, []
        return _Converter(loader, file, problems).node(root, 1), problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [RuleProblem(file, line, None, f"not valid YAML: {exc.problem}")]
    except yaml.YAMLError as exc:
        return None, [RuleProblem(file, 1, None, f"not valid YAML: {exc}")]
    except _Refused as exc:
        return None, [RuleProblem(file, exc.line, None, exc.message)]
    finally:
        loader.dispose()


class _Refused(Exception):
    """A document beyond a limit; refused whole, at `line`."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting, many aliases and an alias in its own
    anchor's value (a loop) while it composes, before anything is expanded."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._aliases = 0
        self._depth = 0
        self._open: set[str] = set()  # anchors whose value is being composed

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(line, f"more than {MAX_ALIASES} aliases (*name) in one file")
            if event.anchor in self._open:
                raise _Refused(line, f"the alias *{event.anchor} is inside the value it "
                                     "names: a loop")
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor or "")


class _Converter:
    """Composed YAML nodes into Nodes. A value that aliases repeat is converted once and
    shared (Nodes do not change), but counted and measured wherever it appears."""

    def __init__(self, loader: yaml.SafeLoader, file: Path, problems: list[RuleProblem]) -> None:
        self._loader = loader
        self._file = file
        self._problems = problems
        self._values = 0
        self._where = 1  # the line reached in the text: what an alias repeats lies above it
        # id of a composed node -> its Node, the values in it and the levels it spans
        self._done: dict[int, tuple[Node, int, int]] = {}

    def node(self, node: yaml.Node, depth: int) -> Node:
        return self._convert(node, depth)[0]

    def _convert(self, node: yaml.Node, depth: int) -> tuple[Node, int]:
        done = self._done.get(id(node))
        if done is not None:  # an alias: its value again
            converted, values, levels = done
            self._count(values, depth + levels - 1)
            return converted, levels
        line = node.start_mark.line + 1
        self._where = line
        before = self._values
        self._count(1, depth)
        levels = 1
        if isinstance(node, yaml.MappingNode):
            converted, levels = self._mapping(node, line, depth)
        elif isinstance(node, yaml.SequenceNode):
            items = [self._convert(item, depth + 1) for item in node.value]
            converted = Node([item for item, _ in items], line)
            levels += max((below for _, below in items), default=0)
        else:
            style = getattr(node, "style", None)
            converted = Node(self._scalar(node, line), line, block=style in ("|", ">"))
        self._done[id(node)] = (converted, self._values - before, levels)
        return converted, levels

    def _count(self, values: int, deepest: int) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise _Refused(self._where, f"more than {MAX_VALUES} values in one file (an alias "
                                        "counts the values it repeats)")
        if deepest > MAX_DEPTH:  # an alias placed deep repeats a deep value below it
            raise _Refused(self._where, f"nested deeper than {MAX_DEPTH} levels")

    def _mapping(self, node: yaml.MappingNode, line: int, depth: int) -> tuple[Node, int]:
        out: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        below = 0
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self._scalar(key_node, key_line) if isinstance(key_node, yaml.ScalarNode) \
                else None
            if not isinstance(key, str):
                # YAML 1.1 reads a bare `on`, `off`, `yes` or `no` as a boolean
                shown = repr(key) if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                self._problems.append(RuleProblem(self._file, key_line, None,
                                                  f"key {shown} must be text (quote it)"))
                continue
            if key in out:
                self._problems.append(RuleProblem(self._file, key_line, None,
                                                  f"duplicate key {key!r} (first on line "
                                                  f"{key_lines[key]})"))
                continue
            out[key], levels = self._convert(value_node, depth + 1)
            below = max(below, levels)
            key_lines[key] = key_line
        return Node(out, line, key_lines=key_lines), 1 + below

    def _scalar(self, node: yaml.Node, line: int) -> Scalar | None:
        if isinstance(node.value, str) and len(node.value) > MAX_TEXT_CHARS:
            raise _Refused(line, f"a value longer than {MAX_TEXT_CHARS} characters")
        try:
            value = self._loader.construct_object(node)
        except ValueError as exc:  # an integer of thousands of digits
            raise _Refused(line, f"a value that cannot be read: {exc}") from exc
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and not -MAX_NUMBER <= value <= MAX_NUMBER:  # also false for nan
            raise _Refused(line, f"the number {_short(node.value)} is out of range (at most "
                                 f"{MAX_NUMBER:.0e} either way)")
        if value is not None and not isinstance(value, bool | int | float | str):
            # dates and timestamps are not rule values; keep the text as written
            value = str(node.value)
        return value  # type: ignore[no-any-return]


def _short(value: object) -> str:
    """`value` as written in a message, cut after a few dozen characters."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:40] + "..."


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


def parse_duration(value: object) -> int:
    """Milliseconds from `90`, `90s`, `1.5m`, `500ms` or `2h`; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    ms: float | None = None
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        ms = value * 1000
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            ms = float(match.group(1)) * _UNIT_MS[match.group(2) or "s"]
    if ms is None or math.isnan(ms):
        raise ValueError(f"{_short(value)} is not a duration (write e.g. 90s, 2m, 500ms, 1h)")
    if not ms <= MAX_DURATION_MS:  # also refuses nan
        raise ValueError(f"{_short(value)} is longer than {format_duration(MAX_DURATION_MS)}")
    return round(ms)


def format_duration(ms: int) -> str:
    """`120000` as `2m`: the shortest exact way to write a duration."""
    if ms % 3_600_000 == 0 and ms:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
