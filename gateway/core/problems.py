"""A problem found in a configuration or profile file, located by key path and device."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.counters import clip
from gateway.core.operator_files import (
    MAX_DEPTH,
    UnreadableFile,
    deeper_than,
    read_operator_file,
    toml_brackets_deeper_than,
)

MESSAGE_CHARS = 500  # of a problem as printed: the lists of known names fit


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file, located by key path and device."""

    path: str
    message: str
    device: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} (device {self.device})" if self.device else self.path
        # a message may quote the value it refuses: never a whole one into a log
        return clip(f"{where}: {self.message}", MESSAGE_CHARS)


class ConfigError(Exception):
    """The configuration file has problems; `problems` lists every one."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{file}: {len(problems)} problem(s)\n{lines}")


def problem_from_pydantic(err: Any, raw: dict[str, Any], prefix: str = "") -> Problem:
    """A pydantic error as a Problem: key path as in the file, and the device it concerns."""
    problem = _problem(err, raw)
    if prefix:
        path = problem.path if problem.path.startswith("[") else "." + problem.path
        return Problem(prefix + path if problem.path != "<root>" else prefix,
                       problem.message, problem.device)
    return problem


def _problem(err: Any, raw: dict[str, Any]) -> Problem:
    loc: tuple[Any, ...] = err["loc"]
    device = None
    if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
        entry = raw["devices"][loc[1]]
        if isinstance(entry, dict):
            if isinstance(entry.get("id"), str):
                device = entry["id"]
            # pydantic puts the transport tag into the path; the file does not have it
            if len(loc) >= 3 and loc[2] == entry.get("transport"):
                loc = (*loc[:2], *loc[3:])
    return Problem(_path(loc), _message(err), device)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])


def read_toml(file: Path) -> dict[str, Any]:
    """The TOML document in `file`; ConfigError when it cannot be read or parsed."""
    try:
        text = read_operator_file(file)
    except UnreadableFile as exc:
        raise ConfigError(file, [Problem("<file>", exc.message)]) from exc
    return parse_toml(text, file)


def parse_toml(text: str, file: Path) -> dict[str, Any]:
    """The TOML document in `text`, read from `file`; ConfigError when it cannot be parsed or
    nests deeper than MAX_DEPTH."""
    if toml_brackets_deeper_than(text, MAX_DEPTH + 2):  # + a table header's [[ ]]
        raise ConfigError(file, [Problem("<toml>", _TOO_DEEP)])
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, [Problem("<toml>", str(exc))]) from exc
    except RecursionError as exc:  # arrays or inline tables nested thousands deep
        raise ConfigError(file, [Problem("<toml>", _TOO_DEEP)]) from exc
    except ValueError as exc:  # an integer of thousands of digits
        raise ConfigError(file, [Problem("<toml>", f"a value cannot be read: {exc}")]) from exc
    if deeper_than(document):
        raise ConfigError(file, [Problem("<toml>", _TOO_DEEP)])
    return document


_TOO_DEEP = f"tables and arrays nest deeper than {MAX_DEPTH} levels"
