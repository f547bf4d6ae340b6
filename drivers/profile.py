"""Device profiles: one TOML file per device model, mapping its transport onto the kind's model.

    name = "zigbee-smoke"            # equals the file name without .toml
    kind = "smoke"
    transport = "json"               # json (MQTT or HTTP push), modbus, serial
    vendor = "..."
    heartbeat_s = 3600               # the device's own report interval
    models = ["HS1SA", ...]          # model ids it covers (white labels too), e.g. zigbee2mqtt's
    availability_topic = "{topic}/availability"  # where a bridge says online/offline
    include = ["zigbee/battery"]     # shared pieces, merged under this file's own keys
    [json] / [modbus] / [serial]     # the mapping, checked by the transport's schema

Shipped profiles live in drivers/profiles/; a site may add its own directories. Pieces live
in subdirectories of them (`zigbee/battery.toml` is the piece `zigbee/battery`): a piece
holds any keys of a profile but the ones that name the model, and may include other pieces.
Merging: tables merge key by key, lists append (the pieces' entries first, in include order),
and a value the including file sets itself wins over a piece's; a piece reached twice is
merged once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.json_map import JsonMap
from gateway.core.model import DeviceKind
from gateway.core.problems import ConfigError, Problem, problem_from_pydantic, read_toml

BUILTIN = Path(__file__).parent / "profiles"

Transport = Literal["json", "modbus", "serial"]


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    kind: DeviceKind
    transport: Transport
    vendor: str = ""
    model: str = ""
    description: str = ""
    heartbeat_s: float = Field(default=0, ge=0, le=86_400)
    models: list[str] = Field(default_factory=list)
    availability_topic: str | None = Field(default=None, min_length=1)
    json_: dict[str, Any] | None = Field(default=None, alias="json")
    modbus: dict[str, Any] | None = None
    serial: dict[str, Any] | None = None


def _json(raw: dict[str, Any], kind: DeviceKind) -> tuple[BaseModel, list[tuple[str, str]]]:
    mapping = JsonMap.model_validate(raw)
    return mapping, mapping.problems(kind)


def _modbus(raw: dict[str, Any], kind: DeviceKind
            ) -> tuple[BaseModel, list[tuple[str, str]]]:
    from drivers.modbus import parse_modbus_map  # its models, only where a profile needs them

    return parse_modbus_map(raw, kind)


def _serial(raw: dict[str, Any], kind: DeviceKind
            ) -> tuple[BaseModel, list[tuple[str, str]]]:
    from drivers.serial_frames import parse_serial_format  # as above: 45 ms of start-up

    return parse_serial_format(raw, kind)


# transport -> parser of its mapping section: validated model, and (path, message) problems
MAPPINGS: dict[str, Callable[[dict[str, Any], DeviceKind],
                             tuple[BaseModel, list[tuple[str, str]]]]] = {
    "json": _json,
    "modbus": _modbus,
    "serial": _serial,
}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    kind: DeviceKind
    transport: Transport
    vendor: str
    model: str
    description: str
    heartbeat_s: float
    mapping: BaseModel
    file: Path
    models: tuple[str, ...] = ()
    availability_topic: str | None = None  # with "{topic}" standing for the device's topic

    def availability_for(self, topic: str) -> str | None:
        """The topic on which a bridge says whether the device at `topic` is reachable."""
        if self.availability_topic is None:
            return None
        return self.availability_topic.replace(TOPIC_PLACEHOLDER, topic)


TOPIC_PLACEHOLDER = "{topic}"
PIECE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}(/[a-z0-9][a-z0-9_.-]{0,63}){0,3}$")
# what names a model: only a profile says it, never a piece shared by many
_MODEL_KEYS = ("name", "kind", "vendor", "model", "models", "description")


def load_profile(file: Path, pieces: Sequence[Path] = ()) -> Profile:
    """Read and check one profile; ConfigError lists every problem with its key path.

    Included pieces are looked for in `pieces` (first match wins), then in the profile's
    own directory and the shipped one.
    """
    return profile_from_toml(read_toml(file), file, pieces)


def profile_from_toml(document: dict[str, Any], file: Path, pieces: Sequence[Path] = ()
                      ) -> Profile:
    """The profile in `document`, read from `file` (see `load_profile`)."""
    search = list(dict.fromkeys([*pieces, file.parent, BUILTIN]))
    raw = _with_pieces(document, file, search, (file.stem,), set())
    try:
        header = _Header.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(file, [problem_from_pydantic(e, raw) for e in exc.errors()]) from exc
    problems: list[Problem] = []
    if header.name != file.stem:
        problems.append(Problem("name", f"must equal the file name {file.stem!r}"))
    problems += _model_problems(header)
    section = {"json": header.json_, "modbus": header.modbus, "serial": header.serial}
    present = [key for key, value in section.items() if value is not None]
    if present != [header.transport]:
        problems.append(Problem(header.transport,
                                f"a {header.transport} profile needs exactly one "
                                f"[{header.transport}] section (found: {present or 'none'})"))
        raise ConfigError(file, problems)
    parse = MAPPINGS.get(header.transport)
    if parse is None:
        raise ConfigError(file, [Problem("transport", f"{header.transport} is not supported")])
    body = section[header.transport]
    assert body is not None
    try:
        mapping, mapping_problems = parse(body, header.kind)
    except ValidationError as exc:
        problems += [problem_from_pydantic(e, body, prefix=header.transport)
                     for e in exc.errors()]
        raise ConfigError(file, problems) from exc
    problems += [Problem(f"{header.transport}.{path}", msg) for path, msg in mapping_problems]
    if problems:
        raise ConfigError(file, problems)
    return Profile(header.name, header.kind, header.transport, header.vendor, header.model,
                   header.description, header.heartbeat_s, mapping, file,
                   tuple(header.models), header.availability_topic)


def _model_problems(header: _Header) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for index, model in enumerate(header.models):
        if not model.strip():
            problems.append(Problem(f"models[{index}]", "a model id cannot be empty"))
        elif model in seen:
            problems.append(Problem(f"models[{index}]", f"{model!r} is listed twice"))
        seen.add(model)
    topic = header.availability_topic
    if topic is not None:
        if TOPIC_PLACEHOLDER not in topic:
            problems.append(Problem("availability_topic", f"must contain {TOPIC_PLACEHOLDER} "
                                    "(the device's topic): every device has its own"))
        elif "+" in topic or "#" in topic:
            problems.append(Problem("availability_topic", "names one device's topic: no "
                                    "wildcards"))
    if topic is not None and header.transport != "json":
        problems.append(Problem("availability_topic", "only JSON profiles read an MQTT "
                                f"availability topic, not {header.transport} ones"))
    return problems


def _with_pieces(raw: dict[str, Any], file: Path, search: Sequence[Path],
                 chain: tuple[str, ...], merged_once: set[str]) -> dict[str, Any]:
    """`raw` with the pieces it includes merged under it; ConfigError (naming `file`) for an
    include that is missing, malformed or part of a cycle.

    A piece reached twice (two pieces that both include `zigbee/battery`) is merged once,
    where it is first reached.
    """
    body = dict(raw)
    includes = body.pop("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(file, [Problem("include", 'a list of piece names, e.g. '
                                         '["zigbee/battery"]')])
    merged: dict[str, Any] = {}
    for index, name in enumerate(includes):
        key = f"include[{index}]"
        if not PIECE_NAME.match(name):
            raise ConfigError(file, [Problem(key, f"{name[:80]!r} is not a piece name "
                                             "(like zigbee/battery)")])
        if name in chain[1:]:
            cycle = " -> ".join((*chain, name))
            raise ConfigError(file, [Problem(key, f"includes form a cycle: {cycle}")])
        if name in merged_once:
            continue
        merged_once.add(name)
        piece_file = next((d / f"{name}.toml" for d in search
                           if (d / f"{name}.toml").is_file()), None)
        if piece_file is None:
            where = ", ".join(str(d) for d in search)
            raise ConfigError(file, [Problem(key, f"no piece {name!r}: no {name}.toml in "
                                             f"{where}")])
        piece_raw = read_toml(piece_file)
        named = [k for k in _MODEL_KEYS if k in piece_raw]
        if named:
            raise ConfigError(piece_file, [Problem(k, "a piece cannot set it: only a profile "
                                                   "names a model") for k in named])
        piece = _with_pieces(piece_raw, piece_file, search, (*chain, name), merged_once)
        merged = _merge(merged, piece, "", file, f"{key} ({name})")
    return _merge(merged, body, "", file, "this file")


def _merge(base: dict[str, Any], over: dict[str, Any], path: str, file: Path,
           source: str) -> dict[str, Any]:
    """`over` merged onto `base`: tables key by key, lists appended, other values replaced."""
    out = dict(base)
    for key, value in over.items():
        where = f"{path}.{key}" if path else key
        if key not in out:
            out[key] = value
            continue
        old = out[key]
        if isinstance(old, dict) != isinstance(value, dict) or (
                isinstance(old, list) != isinstance(value, list)):
            raise ConfigError(file, [Problem(where, f"{source} gives it as a "
                                             f"{_toml_type(value)}, an included piece as a "
                                             f"{_toml_type(old)}")])
        if isinstance(old, dict):
            out[key] = _merge(old, value, where, file, source)
        elif isinstance(old, list):
            twice = [item for item in value if item in old]
            if twice:
                raise ConfigError(file, [Problem(where, f"{source} repeats an entry an "
                                                 f"included piece has: {str(twice[0])[:120]}")])
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


def _toml_type(value: Any) -> str:
    return "table" if isinstance(value, dict) else "list" if isinstance(value, list) else "value"


class ProfileLibrary:
    """Every profile found in the given directories; later directories override earlier."""

    def __init__(self, directories: Iterable[Path] = (BUILTIN,)) -> None:
        self._files: dict[str, Path] = {}
        self._directories = list(directories)
        for directory in self._directories:
            for file in sorted(directory.glob("*.toml")):
                self._files[file.stem] = file
        self._pieces = self._directories[::-1]  # a site's piece overrides a shipped one
        self._loaded: dict[str, Profile] = {}

    def names(self) -> list[str]:
        return sorted(self._files)

    def get(self, name: str) -> Profile:
        """Load on first use; KeyError if no such profile, ConfigError if it is broken.

        A name that is no profile's is looked up as a model id (`for_model`).
        """
        if name not in self._files:
            return self.for_model(name)
        if name not in self._loaded:
            self._loaded[name] = load_profile(self._files[name], self._pieces)
        return self._loaded[name]

    def for_model(self, model: str) -> Profile:
        """The one profile whose `models` list `model` (as zigbee2mqtt names it in
        `bridge/devices`, white labels included); KeyError if none or several do."""
        found = []
        for name in self.names():
            try:
                profile = self.get(name)
            except ConfigError:
                continue  # a broken profile is reported when a device names it
            if model in profile.models:
                found.append(profile)
        if len(found) != 1:
            raise KeyError(f"no profile covers the model {model!r}" if not found else
                           f"the model {model!r} is covered by several profiles: "
                           f"{', '.join(p.name for p in found)}")
        return found[0]
