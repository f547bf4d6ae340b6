"""The gateway's TOML configuration, validated with pydantic; every problem is reported."""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.kinds import MODELS
from gateway.model import DeviceKind

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_name_re = re.compile(_NAME)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", max_length=64)
    username: str | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=86_400, ge=60)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=600)


class StoreConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    org: str = "scgw"
    bucket: str = "scgw"
    token_env: str | None = None
    batch_size: int = Field(default=500, ge=1, le=50_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=600)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    retry_min_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_s: float = Field(default=30.0, gt=0, le=3600)


class JournalConfig(_Strict):
    path: Path = Path("journal.db")
    telemetry_capacity: int = Field(default=10_000, ge=10, le=10_000_000)


class Location(_Strict):
    building: str | None = None
    unit: str | None = None
    floor: int | None = None

    def label(self) -> str:
        parts = []
        if self.building is not None:
            parts.append(f"building {self.building}")
        if self.unit is not None:
            parts.append(f"unit {self.unit}")
        if self.floor is not None:
            parts.append(f"floor {self.floor}")
        return ", ".join(parts) or "unknown location"


class GpioButtonSettings(_Strict):
    pin: int = Field(ge=0, le=27)
    led_pin: int | None = Field(default=None, ge=0, le=27)
    pull_up: bool = True
    debounce_ms: int = Field(default=50, ge=0, le=2000)
    long_press_s: float = Field(default=3.0, gt=0, le=60)
    blink_on_s: float = Field(default=0.5, gt=0, le=10)
    blink_off_s: float = Field(default=0.5, gt=0, le=10)


class MqttIngressSettings(_Strict):
    topic: str = Field(min_length=1)
    event_key: str | None = None
    events: dict[str, str] = Field(default_factory=dict)
    readings: list[str] = Field(default_factory=list)

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("an ingress topic names one device: no wildcards")
        return value


class _DeviceBase(_Strict):
    id: str = Field(pattern=_NAME)
    kind: DeviceKind
    location: Location = Location()
    heartbeat_s: float = Field(default=0, ge=0, le=86_400)


class GpioDevice(_DeviceBase):
    transport: Literal["gpio"]
    gpio: GpioButtonSettings


class MqttDevice(_DeviceBase):
    transport: Literal["mqtt"]
    mqtt: MqttIngressSettings


DeviceConfig = Annotated[GpioDevice | MqttDevice, Field(discriminator="transport")]


class GatewayConfig(_Strict):
    site: str = Field(pattern=_NAME)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    gpio_factory: Literal["default", "mock"] = "default"
    broker: BrokerConfig = BrokerConfig()
    store: StoreConfig
    journal: JournalConfig = JournalConfig()
    rule_files: list[Path] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"scgw-{self.site}"

    def device(self, device_id: str) -> GpioDevice | MqttDevice | None:
        for device in self.devices:
            if device.id == device_id:
                return device
        return None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file, located by key path and device."""

    path: str
    message: str
    device: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} (device {self.device})" if self.device else self.path
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration file has problems; `problems` lists every one."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{file}: {len(problems)} problem(s)\n{lines}")


def load_config(file: Path, env: dict[str, str] | None = None) -> GatewayConfig:
    """Read and validate `file`; raise ConfigError naming every problem found."""
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(file, [Problem("<file>", f"cannot read: {exc.strerror}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, [Problem("<toml>", str(exc))]) from exc
    return parse_config(raw, file, os.environ if env is None else env)


def parse_config(raw: dict[str, Any], file: Path, env: Any) -> GatewayConfig:
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(file, [_problem(err, raw) for err in exc.errors()]) from exc
    problems = _cross_checks(config, file.parent, env)
    if problems:
        raise ConfigError(file, problems)
    return config


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


def _cross_checks(config: GatewayConfig, base: Path, env: Any) -> list[Problem]:
    problems: list[Problem] = []
    ids = Counter(d.id for d in config.devices)
    for index, device in enumerate(config.devices):
        if ids[device.id] > 1:
            problems.append(Problem(f"devices[{index}].id", "duplicate device id", device.id))
    pins: dict[int, str] = {}
    topics: dict[str, str] = {}
    for index, device in enumerate(config.devices):
        if isinstance(device, GpioDevice):
            used = [("pin", device.gpio.pin)]
            if device.gpio.led_pin is not None:
                used.append(("led_pin", device.gpio.led_pin))
            for key, pin in used:
                if pin in pins:
                    problems.append(
                        Problem(
                            f"devices[{index}].gpio.{key}",
                            f"GPIO {pin} is already used by device {pins[pin]}",
                            device.id,
                        )
                    )
                pins[pin] = device.id
        else:
            topic = device.mqtt.topic
            if topic in topics:
                problems.append(
                    Problem(
                        f"devices[{index}].mqtt.topic",
                        f"topic already mapped to device {topics[topic]}",
                        device.id,
                    )
                )
            topics[topic] = device.id
            model = MODELS[device.kind]
            for raw, event_type in device.mqtt.events.items():
                if event_type not in model.events:
                    problems.append(Problem(
                        f"devices[{index}].mqtt.events.{raw}",
                        f"{event_type!r} is not an event of {device.kind} devices "
                        f"(known: {', '.join(sorted(model.events))})", device.id))
            if device.mqtt.events and not device.mqtt.event_key:
                problems.append(
                    Problem(f"devices[{index}].mqtt.event_key", "events need an event_key",
                            device.id)
                )
    if config.broker.reconnect_max_s < config.broker.reconnect_min_s:
        problems.append(Problem("broker.reconnect_max_s", "must be >= broker.reconnect_min_s"))
    if config.store.retry_max_s < config.store.retry_min_s:
        problems.append(Problem("store.retry_max_s", "must be >= store.retry_min_s"))
    for key, name in (("store.token_env", config.store.token_env),
                      ("broker.password_env", config.broker.password_env)):
        if name and name not in env:
            problems.append(Problem(key, f"environment variable {name} is not set"))
    for index, rule_file in enumerate(config.rule_files):
        path = rule_file if rule_file.is_absolute() else base / rule_file
        if not path.is_file():
            problems.append(Problem(f"rule_files[{index}]", f"no such file: {path}"))
    if config.broker.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(config.broker.tls, key)
            if value is not None and not (value if value.is_absolute() else base / value).is_file():
                problems.append(Problem(f"broker.tls.{key}", f"no such file: {value}"))
    return problems


def is_valid_name(value: str) -> bool:
    return bool(_name_re.match(value))
