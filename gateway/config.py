"""The gateway's TOML configuration, validated with pydantic; every problem is reported."""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.profile import BUILTIN, ProfileLibrary
from gateway.kinds import MODELS
from gateway.model import DeviceKind
from gateway.problems import ConfigError, Problem, problem_from_pydantic, read_toml

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


DEFAULT_MAX_PAYLOAD = 65_536
BROKER_MESSAGE_LIMIT = 262_144  # message_size_limit of the installed and private brokers


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
    # after a lost connection, publish again what the broker confirmed this long before the
    # loss: a broker that crashes may have acknowledged messages it never delivered
    replay_window_s: float = Field(default=30.0, ge=0, le=3600)
    # a message the broker delivers again within this long of journalling it (same packet
    # id, same content) is recognised as the same message and journalled only once
    redelivery_window_s: float = Field(default=3600.0, ge=0, le=86_400)
    # a device's or an acknowledgement's payload beyond this is refused unread (counted);
    # the installed broker refuses more than BROKER_MESSAGE_LIMIT itself
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD, ge=256,
                                   le=BROKER_MESSAGE_LIMIT)


class StoreConfig(_Strict):
    # "v2": /api/v2/write (InfluxDB 2.x/3.x, Cloud, 1.8+, VictoriaMetrics);
    # "v1": the 1.x /write endpoint (Debian's `influxdb` package)
    api: Literal["v2", "v1"] = "v2"
    url: str = Field(pattern=r"^https?://")
    org: str = "scgw"  # v2
    bucket: str = "scgw"  # v2
    token_env: str | None = None  # v2: the API token
    database: str = Field(default="scgw", min_length=1)  # v1
    retention_policy: str | None = None  # v1; None: the database's default
    username: str | None = None  # v1, with the password in password_env
    password_env: str | None = None  # v1
    batch_size: int = Field(default=500, ge=1, le=50_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=600)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    retry_min_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_s: float = Field(default=30.0, gt=0, le=3600)
    # after a new connection to the store (it may have restarted), write again the journal
    # records it accepted this long before: a store that crashes may lose what it had
    # answered 2xx to and not yet flushed (VictoriaMetrics: about the last second)
    replay_window_s: float = Field(default=10.0, ge=0, le=3600)


class JournalConfig(_Strict):
    path: Path = Path("journal.db")
    telemetry_capacity: int = Field(default=10_000, ge=10, le=10_000_000)
    # disk space: events are refused (counted) first, alarms keep a reserve of their own
    max_mb: float = Field(default=512.0, gt=0)
    alarm_reserve_mb: float = Field(default=32.0, ge=0)
    min_free_disk_mb: float = Field(default=64.0, ge=0)
    prune_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    # `scgw status` data, rewritten every 2 s: beside the journal unless set; on a Pi, a RAM
    # file system (/run) spares the SD card
    status_path: Path | None = None


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


class ModbusBusConfig(_Strict):
    """One physical Modbus bus (an RS-485 port, or a Modbus TCP gateway): one owner task."""

    id: str = Field(pattern=_NAME)
    type: Literal["rtu", "tcp"]
    port: str | None = None  # rtu: the serial device, e.g. /dev/serial0
    host: str | None = None  # tcp
    tcp_port: int = Field(default=502, ge=1, le=65535)
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    inter_frame_ms: float = Field(default=5.0, ge=0, le=1000)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)


class ModbusSettings(_Strict):
    bus: str
    unit: int = Field(ge=1, le=247)
    poll_s: float = Field(default=10.0, gt=0, le=3600)
    alarm_poll_s: float = Field(default=1.0, gt=0, le=3600)


class SerialSettings(_Strict):
    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class HttpSettings(_Strict):
    token: str = Field(min_length=16)


class HttpServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_485_760)
    # the push port is open to the LAN without authentication until a request arrives:
    # every connection is bounded in number and time
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    idle_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=256, ge=1, le=4096)
    max_connections_per_address: int = Field(default=16, ge=1, le=4096)


class MetricsConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=1, le=65535)


class _DeviceBase(_Strict):
    id: str = Field(pattern=_NAME)
    kind: DeviceKind
    location: Location = Location()
    heartbeat_s: float = Field(default=0, ge=0, le=86_400)
    profile: str | None = None


class GpioDevice(_DeviceBase):
    transport: Literal["gpio"]
    gpio: GpioButtonSettings


class MqttDevice(_DeviceBase):
    transport: Literal["mqtt"]
    mqtt: MqttIngressSettings


class ModbusDevice(_DeviceBase):
    transport: Literal["modbus"]
    modbus: ModbusSettings


class SerialDevice(_DeviceBase):
    transport: Literal["serial"]
    serial: SerialSettings


class HttpDevice(_DeviceBase):
    transport: Literal["http"]
    http: HttpSettings


AnyDevice = GpioDevice | MqttDevice | ModbusDevice | SerialDevice | HttpDevice
DeviceConfig = Annotated[AnyDevice, Field(discriminator="transport")]


class GatewayConfig(_Strict):
    site: str = Field(pattern=_NAME)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    gpio_factory: Literal["default", "mock"] = "default"
    broker: BrokerConfig = BrokerConfig()
    store: StoreConfig
    journal: JournalConfig = JournalConfig()
    rule_files: list[Path] = Field(default_factory=list)  # files or directories; default pack
    contacts_file: Path | None = None
    profile_dirs: list[Path] = Field(default_factory=list)
    pseudonym_key_env: str | None = None
    http: HttpServerConfig | None = None
    metrics: MetricsConfig | None = None
    buses: list[ModbusBusConfig] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"scgw-{self.site}"


# the keys that name an environment variable holding a secret; a command checks only those
# it uses (`scgw status` needs none of them)
SECRETS: Final = frozenset({"broker.password_env", "store.token_env", "store.password_env",
                            "pseudonym_key_env"})


class InvalidConfigError(ConfigError):
    """ConfigError that keeps what could be read of the file, for the checks that go on."""

    def __init__(self, file: Path, problems: list[Problem], partial: GatewayConfig | None) -> None:
        super().__init__(file, problems)
        self.partial = partial  # the valid parts (invalid devices and values left out)


def load_config(file: Path, env: Mapping[str, str] | None = None, *,
                secrets: Collection[str] = SECRETS) -> GatewayConfig:
    """Read and validate `file`; raise ConfigError naming every problem found.

    Only the variables of `secrets` (keys of SECRETS) must be set in `env`."""
    raw = read_toml(file)
    return parse_config(raw, file, os.environ if env is None else env, secrets=secrets)


def parse_config(raw: dict[str, Any], file: Path, env: Mapping[str, str], *,
                 secrets: Collection[str] = SECRETS) -> GatewayConfig:
    """Validate `raw`; raise InvalidConfigError naming every problem, structural or not."""
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [problem_from_pydantic(err, raw) for err in exc.errors()]
        salvaged = _salvage(raw, exc)
        if salvaged is None:
            raise InvalidConfigError(file, problems, None) from exc
        config, places = salvaged
    else:
        problems = []
        places = _Places(list(range(len(config.devices))), list(range(len(config.buses))))
    problems += _cross_checks(config, places, file.parent, env, secrets)
    config = _resolved(config, file)
    if problems:
        raise InvalidConfigError(file, problems, config)
    return config


@dataclass(frozen=True, slots=True)
class _Places:
    """Where each validated device and bus stands in the file, and what was left out of it
    for failing validation: checks that involve a value left out are not made."""

    devices: list[int]
    buses: list[int]
    left_out: frozenset[str] = frozenset()  # keys, as `broker.port`
    left_out_buses: frozenset[str] = frozenset()  # their ids

    def sound(self, *keys: str) -> bool:
        return not any(key in self.left_out or key.split(".")[0] in self.left_out
                       for key in keys)


_PLACEHOLDERS: Final[dict[tuple[str, ...], object]] = {
    ("site",): "site", ("store",): {"url": "http://store.invalid"},
    ("store", "url"): "http://store.invalid"}


def _salvage(raw: dict[str, Any],
             exc: ValidationError) -> tuple[GatewayConfig, _Places] | None:
    """The file without what failed validation, so that the other checks can still run:
    an invalid device or bus is left out whole, an invalid value falls back to its default,
    a missing required value gets a placeholder that no check reports on."""
    clean = copy.deepcopy(raw)
    dropped: dict[str, set[int]] = {"devices": set(), "buses": set()}
    left_out: set[str] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        if loc and loc[0] in dropped:
            if len(loc) >= 2 and isinstance(loc[1], int):
                dropped[loc[0]].add(loc[1])
            else:
                clean.pop(loc[0], None)
            continue
        # a value inside a list (rule_files[2]) takes the whole list with it
        cut = next((n for n, part in enumerate(loc) if isinstance(part, int)), len(loc))
        path = tuple(str(part) for part in loc[:cut])
        if path:
            left_out.add(".".join(path))
            _remove(clean, path)
            if path in _PLACEHOLDERS:
                _put(clean, path, copy.deepcopy(_PLACEHOLDERS[path]))
    places: dict[str, list[int]] = {}
    bus_entries = clean.get("buses")
    left_out_buses = {str(bus["id"]) for n, bus in enumerate(bus_entries)
                      if n in dropped["buses"] and isinstance(bus, dict) and "id" in bus
                      } if isinstance(bus_entries, list) else set()
    for key, bad in dropped.items():
        entries = clean.get(key)
        if not isinstance(entries, list):
            places[key] = []
            continue
        places[key] = [n for n in range(len(entries)) if n not in bad]
        clean[key] = [entries[n] for n in places[key]]
    try:
        config = GatewayConfig.model_validate(clean)
    except ValidationError:
        return None  # nothing sound to check further: the problems found so far stand
    return config, _Places(places["devices"], places["buses"], frozenset(left_out),
                           frozenset(left_out_buses))


def _remove(raw: dict[str, Any], path: tuple[str, ...]) -> None:
    parent: Any = raw
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _put(raw: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    parent: Any = raw
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent[path[-1]] = value


def _resolved(config: GatewayConfig, file: Path) -> GatewayConfig:
    """Paths in the file are relative to the file, wherever the gateway is started from."""
    broker = config.broker
    if broker.tls is not None:
        tls = broker.tls.model_copy(update={
            key: _beside(file, value) for key in ("ca_file", "cert_file", "key_file")
            if (value := getattr(broker.tls, key)) is not None})
        broker = broker.model_copy(update={"tls": tls})
    return config.model_copy(update={
        "broker": broker,
        "journal": config.journal.model_copy(update={
            "path": _beside(file, config.journal.path),
            "status_path": _beside(file, config.journal.status_path)
            if config.journal.status_path else None}),
        "profile_dirs": [_beside(file, d) for d in config.profile_dirs],
        "rule_files": [_beside(file, f) for f in config.rule_files],
        "contacts_file": _beside(file, config.contacts_file) if config.contacts_file else None,
    })


def _beside(file: Path, path: Path) -> Path:
    return path if path.is_absolute() else file.parent / path


def _cross_checks(config: GatewayConfig, places: _Places, base: Path, env: Mapping[str, str],
                  secrets: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    devices = list(zip(places.devices, config.devices, strict=True))
    ids = Counter(d.id for d in config.devices)
    for index, device in devices:
        if ids[device.id] > 1:
            problems.append(Problem(f"devices[{index}].id", "duplicate device id", device.id))
    claimed: dict[tuple[str, str], str] = {}  # (what, value) -> device that has it
    buses = {b.id: b for b in config.buses}

    def claim(index: int, device: AnyDevice, key: str, what: str, value: object) -> None:
        holder = claimed.get((what, str(value)))
        claimed[(what, str(value))] = device.id
        if holder is not None:
            problems.append(Problem(f"devices[{index}].{key}",
                                    f"{what} {value} is already used by device {holder}",
                                    device.id))

    for index, device in devices:
        if isinstance(device, GpioDevice):
            if device.kind is not DeviceKind.ELDER_BUTTON:
                problems.append(Problem(f"devices[{index}].kind",
                                        "a GPIO device is an elder_button", device.id))
            claim(index, device, "gpio.pin", "GPIO", device.gpio.pin)
            if device.gpio.led_pin is not None:
                claim(index, device, "gpio.led_pin", "GPIO", device.gpio.led_pin)
        elif isinstance(device, MqttDevice):
            claim(index, device, "mqtt.topic", "topic", device.mqtt.topic)
            model = MODELS[device.kind]
            for raw, event_type in device.mqtt.events.items():
                if event_type not in model.events:
                    problems.append(Problem(
                        f"devices[{index}].mqtt.events.{raw}",
                        f"{event_type!r} is not an event of {device.kind} devices "
                        f"(known: {', '.join(sorted(model.events))})", device.id))
            for n, reading in enumerate(device.mqtt.readings):
                if reading not in model.readings:
                    problems.append(Problem(
                        f"devices[{index}].mqtt.readings[{n}]",
                        f"{reading!r} is not a reading of {device.kind} devices "
                        f"(known: {', '.join(sorted(model.readings))})", device.id))
            if device.mqtt.events and not device.mqtt.event_key:
                problems.append(Problem(f"devices[{index}].mqtt.event_key",
                                        "events need an event_key", device.id))
            inline = device.mqtt.event_key or device.mqtt.events or device.mqtt.readings
            if device.profile is not None and inline:
                problems.append(Problem(f"devices[{index}].mqtt",
                                        "give a profile or an inline mapping, not both",
                                        device.id))
        elif isinstance(device, ModbusDevice):
            if device.modbus.bus not in buses and device.modbus.bus not in places.left_out_buses:
                problems.append(Problem(f"devices[{index}].modbus.bus",
                                        f"no bus {device.modbus.bus!r} in [[buses]]", device.id))
            claim(index, device, "modbus.unit", f"unit id on bus {device.modbus.bus}",
                  device.modbus.unit)
            if device.modbus.alarm_poll_s > device.modbus.poll_s:
                problems.append(Problem(f"devices[{index}].modbus.alarm_poll_s",
                                        "must be <= poll_s", device.id))
        elif isinstance(device, SerialDevice):
            claim(index, device, "serial.port", "serial port", device.serial.port)
        elif isinstance(device, HttpDevice):
            # the token itself is a secret: compare it, never print it
            holder = claimed.get(("token", device.http.token))
            claimed[("token", device.http.token)] = device.id
            if holder is not None:
                problems.append(Problem(f"devices[{index}].http.token",
                                        f"the same token as device {holder}", device.id))
            if config.http is None and places.sound("http"):
                problems.append(Problem(f"devices[{index}].http",
                                        "HTTP push devices need an [http] section", device.id))
        if not isinstance(device, GpioDevice | MqttDevice) and device.profile is None:
            problems.append(Problem(f"devices[{index}].profile",
                                    f"{device.transport} devices need a profile", device.id))
    bus_ids = Counter(b.id for b in config.buses)
    for index, bus in zip(places.buses, config.buses, strict=True):
        if bus_ids[bus.id] > 1:
            problems.append(Problem(f"buses[{index}].id", f"duplicate bus id {bus.id}"))
        if bus.type == "rtu" and not bus.port:
            problems.append(Problem(f"buses[{index}].port", "an rtu bus needs a serial port"))
        if bus.type == "tcp" and not bus.host:
            problems.append(Problem(f"buses[{index}].host", "a tcp bus needs a host"))
        if bus.type == "rtu" and bus.port and ("serial port", bus.port) in claimed:
            problems.append(Problem(f"buses[{index}].port", f"{bus.port} is also used by "
                                    f"device {claimed[('serial port', bus.port)]}"))
    problems += _profile_checks(config, devices, base)
    if (config.broker.reconnect_max_s < config.broker.reconnect_min_s
            and places.sound("broker.reconnect_min_s", "broker.reconnect_max_s")):
        problems.append(Problem("broker.reconnect_max_s", "must be >= broker.reconnect_min_s"))
    if (config.journal.alarm_reserve_mb >= config.journal.max_mb
            and places.sound("journal.alarm_reserve_mb", "journal.max_mb")):
        problems.append(Problem("journal.alarm_reserve_mb", "must be less than journal.max_mb"))
    if (config.http is not None
            and config.http.max_connections_per_address > config.http.max_connections
            and places.sound("http.max_connections", "http.max_connections_per_address")):
        problems.append(Problem("http.max_connections_per_address",
                                "must be <= http.max_connections"))
    if (config.store.retry_max_s < config.store.retry_min_s
            and places.sound("store.retry_min_s", "store.retry_max_s")):
        problems.append(Problem("store.retry_max_s", "must be >= store.retry_min_s"))
    if config.store.api == "v1" and config.store.token_env and places.sound("store.api"):
        problems.append(Problem("store.token_env", "the v1 API takes store.username and "
                                "store.password_env, not a token"))
    if (config.store.api == "v2" and (config.store.username or config.store.password_env)
            and places.sound("store.api")):
        problems.append(Problem("store.username", "the v2 API takes store.token_env; "
                                "username and password_env are for api = \"v1\""))
    if bool(config.store.username) != bool(config.store.password_env):
        problems.append(Problem("store.password_env", "store.username and store.password_env "
                                "go together"))
    for key, name in (("store.token_env", config.store.token_env),
                      ("store.password_env", config.store.password_env),
                      ("broker.password_env", config.broker.password_env),
                      ("pseudonym_key_env", config.pseudonym_key_env)):
        if key in secrets and name and name not in env:
            problems.append(Problem(key, f"environment variable {name} is not set"))
    key_env = config.pseudonym_key_env
    if ("pseudonym_key_env" in secrets and key_env and key_env in env
            and len(env[key_env].encode()) < 16):
        problems.append(Problem("pseudonym_key_env", f"the key in {key_env} needs at least "
                                "16 bytes"))
    for index, rule_file in enumerate(config.rule_files):
        path = rule_file if rule_file.is_absolute() else base / rule_file
        if not path.exists():
            problems.append(Problem(f"rule_files[{index}]", f"no such file or directory: {path}"))
    if config.contacts_file is not None:
        path = config.contacts_file
        if not (path if path.is_absolute() else base / path).is_file():
            problems.append(Problem("contacts_file", f"no such file: {path}"))
    if config.broker.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(config.broker.tls, key)
            if value is not None and not (value if value.is_absolute() else base / value).is_file():
                problems.append(Problem(f"broker.tls.{key}", f"no such file: {value}"))
    return problems


_PROFILE_TRANSPORT = {"mqtt": "json", "http": "json", "modbus": "modbus", "serial": "serial"}


def _profile_checks(config: GatewayConfig, devices: list[tuple[int, AnyDevice]],
                    base: Path) -> list[Problem]:
    dirs = [BUILTIN, *(d if d.is_absolute() else base / d for d in config.profile_dirs)]
    library = ProfileLibrary(dirs)
    problems: list[Problem] = []
    for index, device in devices:
        if device.profile is None:
            continue
        key = f"devices[{index}].profile"
        try:
            profile = library.get(device.profile)
        except KeyError:
            problems.append(Problem(key, f"no profile {device.profile!r} (known: "
                                    f"{', '.join(library.names()) or 'none'})", device.id))
            continue
        except ConfigError as exc:
            problems.append(Problem(key, f"profile {device.profile} is broken: {exc}",
                                    device.id))
            continue
        if profile.kind != device.kind:
            problems.append(Problem(key, f"profile {profile.name} is for {profile.kind} "
                                    f"devices, not {device.kind}", device.id))
        if profile.transport != _PROFILE_TRANSPORT.get(device.transport):
            problems.append(Problem(key, f"profile {profile.name} speaks {profile.transport}, "
                                    f"not {device.transport}", device.id))
    return problems
