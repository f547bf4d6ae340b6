"""Reading the gateway's configuration file: validated with pydantic, then checked across
keys, devices, buses, profiles and secrets; every problem is reported."""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from drivers.profile import BUILTIN, ProfileLibrary
from gateway.core.config import (
    AnyDevice,
    ConsoleTlsConfig,
    CtwingConfig,
    CtwingDevice,
    DahuaDevice,
    GatewayConfig,
    Gb26875Device,
    GpioDevice,
    HikvisionDevice,
    HttpDevice,
    HttpTlsConfig,
    ModbusDevice,
    MqttDevice,
    OneNetConfig,
    OneNetDevice,
    SerialDevice,
    TlsConfig,
)
from gateway.core.kinds import MODELS
from gateway.core.model import DeviceKind
from gateway.core.problems import ConfigError, Problem, problem_from_pydantic, read_toml
from gateway.core.upstream_config import AnyUpstream

# the keys that name an environment variable holding a secret; a command checks only those
# it uses (`scgw status` needs none of them)
SECRETS: Final = frozenset({"broker.password_env", "store.token_env", "store.password_env",
                            "pseudonym_key_env", "upstreams"})


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
        if err["type"] == "missing" and len(path) > 1 and path not in _PLACEHOLDERS:
            path = path[:-1]  # a table without a key it requires is left out whole
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
        broker = broker.model_copy(update={"tls": _tls_beside(file, broker.tls)})
    http = config.http
    if http is not None and http.tls is not None:
        http = http.model_copy(update={"tls": _tls_beside(file, http.tls)})
    console = config.console
    if console is not None:
        console = console.model_copy(update={
            "tls": _tls_beside(file, console.tls) if console.tls is not None else None,
            "users_file": _beside(file, console.users_file) if console.users_file else None})
    return config.model_copy(update={
        "broker": broker,
        "http": http,
        "console": console,
        "journal": config.journal.model_copy(update={
            "path": _beside(file, config.journal.path),
            "status_path": _beside(file, config.journal.status_path)
            if config.journal.status_path else None}),
        "profile_dirs": [_beside(file, d) for d in config.profile_dirs],
        "rule_files": [_beside(file, f) for f in config.rule_files],
        "contacts_file": _beside(file, config.contacts_file) if config.contacts_file else None,
        "upstreams": [_upstream_beside(file, u) for u in config.upstreams],
    })


def _upstream_beside(file: Path, upstream: AnyUpstream) -> AnyUpstream:
    update: dict[str, Path] = {"policy": _beside(file, upstream.policy)}
    if upstream.ca_file is not None:
        update["ca_file"] = _beside(file, upstream.ca_file)
    return upstream.model_copy(update=update)


def _upstream_checks(config: GatewayConfig, base: Path, env: Mapping[str, str],
                     secrets: Collection[str]) -> list[Problem]:
    """Names used once, policy and CA files there, secrets set (pseudonym keys of 16 bytes
    at least). The policies themselves are checked with the rules (`scgw sharing check`)."""
    problems: list[Problem] = []
    names = Counter(u.name for u in config.upstreams)
    for index, upstream in enumerate(config.upstreams):
        key = f"upstreams[{index}]"
        if names[upstream.name] > 1:
            problems.append(Problem(f"{key}.name", f"duplicate upstream name {upstream.name!r}"))
        for what, path in (("policy", upstream.policy), ("ca_file", upstream.ca_file)):
            if path is not None and not (path if path.is_absolute() else base / path).is_file():
                problems.append(Problem(f"{key}.{what}", f"no such file: {path}"))
        if "upstreams" not in secrets:
            continue
        for field, name in upstream.secret_envs().items():
            if name not in env:
                problems.append(Problem(f"{key}.{field}", f"environment variable {name} is "
                                        "not set"))
            elif field in ("pseudonym_key_env", "secret_env") and len(env[name].encode()) < 16:
                problems.append(Problem(f"{key}.{field}", f"the key in {name} needs at least "
                                        "16 bytes"))
    keys = Counter(u.pseudonym_key_env for u in config.upstreams if u.pseudonym_key_env)
    for index, upstream in enumerate(config.upstreams):
        env_name = upstream.pseudonym_key_env
        if env_name and (keys[env_name] > 1 or env_name == config.pseudonym_key_env):
            problems.append(Problem(f"upstreams[{index}].pseudonym_key_env",
                                    f"{env_name} is another key's too: each upstream needs a "
                                    "key of its own, or two platforms could link their "
                                    "pseudonyms"))
    return problems


def _beside(file: Path, path: Path) -> Path:
    return path if path.is_absolute() else file.parent / path


_TLS_FILES: Final = ("ca_file", "cert_file", "key_file")


_Tls = TypeVar("_Tls", TlsConfig, HttpTlsConfig, ConsoleTlsConfig)


def _tls_beside(file: Path, tls: _Tls) -> _Tls:
    return tls.model_copy(update={key: _beside(file, value) for key in _TLS_FILES
                                  if (value := getattr(tls, key, None)) is not None})


def _tls_problems(prefix: str, tls: TlsConfig | HttpTlsConfig | ConsoleTlsConfig,
                  base: Path) -> list[Problem]:
    """The files a TLS table names that are not there."""
    problems = []
    for key in _TLS_FILES:
        value = getattr(tls, key, None)
        if value is not None and not (value if value.is_absolute() else base / value).is_file():
            problems.append(Problem(f"{prefix}.{key}", f"no such file: {value}"))
    return problems


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
            if device.mqtt.availability_topic is not None:
                claim(index, device, "mqtt.availability_topic", "topic",
                      device.mqtt.availability_topic)
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
        elif isinstance(device, OneNetDevice | CtwingDevice):
            problems += _platform_device_problems(config, index, device, places.sound)
            settings = device.onenet if isinstance(device, OneNetDevice) else device.ctwing
            platform = "OneNET" if isinstance(device, OneNetDevice) else "CTWing"
            if settings.imei is not None:
                claim(index, device, f"{device.transport}.imei", f"{platform} IMEI",
                      settings.imei)
            if isinstance(device, OneNetDevice) and device.onenet.device_name is not None:
                claim(index, device, "onenet.device_name", "OneNET device name",
                      f"{device.onenet.product_id or '*'}/{device.onenet.device_name}")
            if isinstance(device, CtwingDevice) and device.ctwing.device_id is not None:
                claim(index, device, "ctwing.device_id", "CTWing deviceId",
                      device.ctwing.device_id)
        elif isinstance(device, HikvisionDevice):
            if config.http is None and places.sound("http"):
                problems.append(Problem(f"devices[{index}].hikvision",
                                        "Hikvision terminals push to the [http] port: it "
                                        "needs an [http] section", device.id))
            if device.kind not in (DeviceKind.ACCESS, DeviceKind.TEMP_GATE):
                problems.append(Problem(f"devices[{index}].kind", "a Hikvision terminal is "
                                        "an access or temp_gate device", device.id))
        elif isinstance(device, DahuaDevice):
            claim(index, device, "dahua.host", "Dahua terminal",
                  (device.dahua.host, device.dahua.port))
            if device.kind not in (DeviceKind.ACCESS, DeviceKind.TEMP_GATE):
                problems.append(Problem(f"devices[{index}].kind", "a Dahua terminal is an "
                                        "access or temp_gate device", device.id))
            if device.dahua.reconnect_max_s < device.dahua.reconnect_min_s:
                problems.append(Problem(f"devices[{index}].dahua.reconnect_max_s",
                                        "must be >= dahua.reconnect_min_s", device.id))
        if (not isinstance(device, GpioDevice | MqttDevice | Gb26875Device | HikvisionDevice
                           | DahuaDevice)
                and device.profile is None):
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
    problems += _gb26875_checks(config, devices)
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
        problems += _tls_problems("broker.tls", config.broker.tls, base)
    if config.http is not None and config.http.tls is not None:
        problems += _tls_problems("http.tls", config.http.tls, base)
    if config.console is not None and config.console.tls is not None:
        problems += _tls_problems("console.tls", config.console.tls, base)
    problems += _upstream_checks(config, base, env, secrets)
    return problems


def _platform_device_problems(config: GatewayConfig, index: int,
                              device: OneNetDevice | CtwingDevice,
                              sound: Callable[..., bool]) -> list[Problem]:
    """An NB-IoT device behind OneNET or CTWing: named somehow, its platform configured."""
    problems = []
    key = f"devices[{index}].{device.transport}"
    section: OneNetConfig | CtwingConfig | None
    if isinstance(device, OneNetDevice):
        named = device.onenet.device_name is not None or device.onenet.imei is not None
        what, section, platform = "device_name or imei", config.onenet, "onenet"
    else:
        named = device.ctwing.device_id is not None or device.ctwing.imei is not None
        what, section, platform = "device_id or imei", config.ctwing, "ctwing"
    if not named:
        problems.append(Problem(key, f"give {what}: how the platform names the device",
                                device.id))
    if section is None and sound(platform):
        problems.append(Problem(key, f"{platform} devices need an [{platform}] section",
                                device.id))
    if config.http is None and sound("http"):
        problems.append(Problem(key, f"{platform} pushes arrive on the HTTP push port: "
                                "they need an [http] section", device.id))
    return problems


def _gb26875_checks(config: GatewayConfig, devices: list[tuple[int, AnyDevice]]
                    ) -> list[Problem]:
    """Transmission devices have distinct addresses; each component names one of them and
    a place on its fire panels (system address - zone - position) no other component has."""
    problems: list[Problem] = []
    transmitters: dict[str, Gb26875Device] = {}
    addresses: dict[int, str] = {}
    for index, device in devices:
        if not isinstance(device, Gb26875Device):
            continue
        if device.kind is not DeviceKind.SMOKE:
            problems.append(Problem(f"devices[{index}].kind", "a GB/T 26875.3 device reports "
                                    "fire alarms: its kind is smoke", device.id))
        address = device.gb26875.address
        if address is not None:
            transmitters[device.id] = device
            if address in addresses:
                problems.append(Problem(f"devices[{index}].gb26875.address", f"address "
                                        f"{address} is already used by device "
                                        f"{addresses[address]}", device.id))
            addresses.setdefault(address, device.id)
    if transmitters and config.gb26875 is None:
        problems.append(Problem("gb26875", "GB/T 26875.3 devices need a [gb26875] section"))
    components: dict[tuple[str, str], str] = {}
    for index, device in devices:
        if not isinstance(device, Gb26875Device) or device.gb26875.via is None:
            continue
        via, component = device.gb26875.via, str(device.gb26875.component)
        if via not in transmitters:
            problems.append(Problem(f"devices[{index}].gb26875.via", f"no transmission device "
                                    f"{via!r} (a gb26875 device with an address)", device.id))
        key = (via, _component_key(component))
        if key in components:
            problems.append(Problem(f"devices[{index}].gb26875.component", f"component "
                                    f"{component} of {via} is already device "
                                    f"{components[key]}", device.id))
        components.setdefault(key, device.id)
    return problems


def _component_key(component: str) -> str:
    """`1-3-017` and `1-3-17` are the same component."""
    return "-".join(str(int(part)) for part in component.split("-"))


_PROFILE_TRANSPORT = {"mqtt": "json", "http": "json", "modbus": "modbus", "serial": "serial"}
# CTWing passes either the device's own bytes (APPdata: a byte layout) or a JSON object
_PROFILE_TRANSPORTS = {"onenet": {"json"}, "ctwing": {"json", "serial"}}


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
        spoken = _PROFILE_TRANSPORTS.get(device.transport,
                                         {_PROFILE_TRANSPORT.get(device.transport)})
        if profile.transport not in spoken:
            problems.append(Problem(key, f"profile {profile.name} speaks {profile.transport}, "
                                    f"not {device.transport}", device.id))
    return problems
