"""Device profiles: one TOML file per device model, mapping its transport onto the kind's model.

    name = "zigbee-smoke"            # equals the file name without .toml
    kind = "smoke"
    transport = "json"               # json (MQTT or HTTP push), modbus, serial
    vendor = "..."
    heartbeat_s = 3600               # the device's own report interval
    [json] / [modbus] / [serial]     # the mapping, checked by the transport's schema

Shipped profiles live in drivers/profiles/; a site may add its own directories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.json_map import JsonMap
from drivers.modbus import parse_modbus_map
from drivers.serial_frames import parse_serial_format
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
    json_: dict[str, Any] | None = Field(default=None, alias="json")
    modbus: dict[str, Any] | None = None
    serial: dict[str, Any] | None = None


def _json(raw: dict[str, Any], kind: DeviceKind) -> tuple[BaseModel, list[tuple[str, str]]]:
    mapping = JsonMap.model_validate(raw)
    return mapping, mapping.problems(kind)


# transport -> parser of its mapping section: validated model, and (path, message) problems
MAPPINGS: dict[str, Callable[[dict[str, Any], DeviceKind],
                             tuple[BaseModel, list[tuple[str, str]]]]] = {
    "json": _json,
    "modbus": parse_modbus_map,
    "serial": parse_serial_format,
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


def load_profile(file: Path) -> Profile:
    """Read and check one profile; ConfigError lists every problem with its key path."""
    raw = read_toml(file)
    try:
        header = _Header.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(file, [problem_from_pydantic(e, raw) for e in exc.errors()]) from exc
    problems: list[Problem] = []
    if header.name != file.stem:
        problems.append(Problem("name", f"must equal the file name {file.stem!r}"))
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
                   header.description, header.heartbeat_s, mapping, file)


class ProfileLibrary:
    """Every profile found in the given directories; later directories override earlier."""

    def __init__(self, directories: Iterable[Path] = (BUILTIN,)) -> None:
        self._files: dict[str, Path] = {}
        for directory in directories:
            for file in sorted(directory.glob("*.toml")):
                self._files[file.stem] = file
        self._loaded: dict[str, Profile] = {}

    def names(self) -> list[str]:
        return sorted(self._files)

    def get(self, name: str) -> Profile:
        """Load on first use; KeyError if no such profile, ConfigError if it is broken."""
        if name not in self._loaded:
            self._loaded[name] = load_profile(self._files[name])
        return self._loaded[name]
