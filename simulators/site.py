"""A simulated compound: devices on every transport, their simulators, and the gateway config.

    async with SimulatedSite(workdir) as site:          # simulators up, ports known
        text = site.config(broker_port, store_url)      # the gateway's TOML
        ...start the gateway...
        devices = await site.attach(gateway)            # one handle per device id
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt

from drivers.profile import ProfileLibrary
from gateway.config import GatewayConfig, GpioDevice, HttpDevice, MqttDevice
from gateway.kinds import MODELS
from gateway.services import free_port
from simulators.elder_button import SimulatedElder
from simulators.handles import (
    GpioButtonHandle,
    HttpHandle,
    ModbusHandle,
    MqttHandle,
    SerialHandle,
    SimDevice,
)
from simulators.http_pusher import HttpPusher
from simulators.modbus_device import SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator
from simulators.mqtt_device import MqttDeviceSimulator
from simulators.serial_device import SerialDeviceSimulator

SITE = "demo"
KEY_ENV = "SCGW_PSEUDONYM_KEY"
HTTP_TOKENS = {"gate-east": "gate-east-push-token-0001", "door-7-1": "door-7-1-push-token-0001"}


def _healthy(device: SimulatedDevice) -> None:
    """A device at rest: full battery, level cover, normal temperatures, no alarm."""
    for name in MODELS[device.profile.kind].readings:
        if not any(p.reading == name for p in device.register_map.points.values()):
            continue
        if "battery" in name:
            device.set_reading(name, 90)
        elif name == "body_temp_c":
            device.set_reading(name, 36.5)
        elif name == "temperature_c":
            device.set_reading(name, 22)
        elif name in ("tilt_deg", "installed_tilt_deg"):
            device.set_reading(name, 1.0)
        elif name == "water_level_cm":
            device.set_reading(name, 20)
        elif name == "mask":
            device.set_reading(name, 1)


class SimulatedSite:
    """Owns the transport simulators of the compound while in use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.profiles = ProfileLibrary()
        self._stack = contextlib.AsyncExitStack()
        self.modbus = {
            "smoke-3-2": SimulatedDevice(2, self.profiles.get("modbus-smoke-detector")),
            "door-5-1": SimulatedDevice(5, self.profiles.get("modbus-door-io")),
            "manhole-s2": SimulatedDevice(1, self.profiles.get("modbus-manhole-monitor")),
            "gate-north": SimulatedDevice(4, self.profiles.get("modbus-temp-gate")),
        }
        for device in self.modbus.values():
            _healthy(device)
        self.rtu = RtuBusSimulator([self.modbus["smoke-3-2"], self.modbus["door-5-1"]])
        self.tcp = TcpBusSimulator([self.modbus["manhole-s2"], self.modbus["gate-north"]])
        self.serial = {
            "door-3-1": SerialDeviceSimulator(self.profiles.get("serial-access-controller"),
                                              workdir / "tty-door-3-1"),
            "gate-west": SerialDeviceSimulator(self.profiles.get("serial-temp-gate"),
                                               workdir / "tty-gate-west"),
        }
        self.http_port = free_port()
        self.devices: dict[str, SimDevice] = {}

    async def __aenter__(self) -> SimulatedSite:
        self.workdir.mkdir(parents=True, exist_ok=True)
        key_file = self.workdir / "pseudonym.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        os.environ.setdefault(KEY_ENV, key_file.read_text().strip())
        # every contact group is reached on the compound's own broker
        groups = ("family", "duty_office", "clinic", "property_manager", "fire_warden",
                  "maintenance")
        (self.workdir / "contacts.yaml").write_text("groups:\n" + "".join(
            f'  {g}: ["mqtt://sc/{SITE}/notify/{g.replace("_", "-")}"]\n' for g in groups))
        await self._stack.enter_async_context(self.rtu)
        await self._stack.enter_async_context(self.tcp)
        for simulator in self.serial.values():
            await self._stack.enter_async_context(simulator)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stack.aclose()

    def config(self, broker_port: int, store_url: str) -> str:
        """The TOML of the compound's gateway."""
        w = self.workdir
        return f"""\
# Written by the simulated compound; `scgw run --config {w}/gateway.toml` runs the same
# gateway (the simulators must be running for devices to report).
site = "{SITE}"
gpio_factory = "mock"   # simulated GPIO pins
pseudonym_key_env = "{KEY_ENV}"
contacts_file = "{w}/contacts.yaml"

[broker]
host = "127.0.0.1"
port = {broker_port}
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[store]
url = "{store_url}"
bucket = "scgw"
flush_interval_s = 0.5

[journal]
path = "{w}/journal.db"

[http]
host = "127.0.0.1"
port = {self.http_port}

[[buses]]
id = "rs485-1"
type = "rtu"
port = "{self.rtu.port}"
baudrate = 9600
timeout_s = 0.3
retry_max_s = 4.0

[[buses]]
id = "tcp-1"
type = "tcp"
host = "127.0.0.1"
tcp_port = {self.tcp.port}
timeout_s = 0.5
retry_max_s = 4.0

[[devices]]
id = "elder-3-1-502"
kind = "elder_button"
transport = "gpio"
location = {{ building = "3", unit = "1", floor = 5 }}
gpio = {{ pin = 17, led_pin = 27, long_press_s = 3.0 }}

[[devices]]
id = "elder-5-2-101"
kind = "elder_button"
transport = "gpio"
location = {{ building = "5", unit = "2", floor = 1 }}
gpio = {{ pin = 22, led_pin = 23, long_press_s = 3.0 }}

[[devices]]
id = "sos-7-1-301"
kind = "elder_button"
transport = "mqtt"
profile = "zigbee-sos-button"
location = {{ building = "7", unit = "1", floor = 3 }}
mqtt = {{ topic = "zigbee2mqtt/sos-7-1-301" }}

[[devices]]
id = "smoke-3-1"
kind = "smoke"
transport = "mqtt"
profile = "zigbee-smoke"
location = {{ building = "3", unit = "1", floor = 1 }}
mqtt = {{ topic = "zigbee2mqtt/smoke-3-1" }}

[[devices]]
id = "smoke-3-2"
kind = "smoke"
transport = "modbus"
profile = "modbus-smoke-detector"
location = {{ building = "3", unit = "2", floor = 4 }}
modbus = {{ bus = "rs485-1", unit = 2, poll_s = 2.0, alarm_poll_s = 0.5 }}

[[devices]]
id = "door-5-1"
kind = "access"
transport = "modbus"
profile = "modbus-door-io"
location = {{ building = "5", unit = "1" }}
modbus = {{ bus = "rs485-1", unit = 5, poll_s = 2.0, alarm_poll_s = 0.5 }}

[[devices]]
id = "manhole-n1"
kind = "manhole"
transport = "mqtt"
profile = "nbiot-manhole"
location = {{ building = "north-gate" }}
mqtt = {{ topic = "nbiot/manhole-n1/up" }}

[[devices]]
id = "manhole-s2"
kind = "manhole"
transport = "modbus"
profile = "modbus-manhole-monitor"
location = {{ building = "south-road" }}
modbus = {{ bus = "tcp-1", unit = 1, poll_s = 2.0, alarm_poll_s = 0.5 }}

[[devices]]
id = "gate-north"
kind = "temp_gate"
transport = "modbus"
profile = "modbus-temp-gate"
location = {{ building = "north-gate" }}
modbus = {{ bus = "tcp-1", unit = 4, poll_s = 2.0, alarm_poll_s = 0.5 }}

[[devices]]
id = "door-3-1"
kind = "access"
transport = "serial"
profile = "serial-access-controller"
location = {{ building = "3", unit = "1" }}
serial = {{ port = "{self.serial['door-3-1'].link}" }}

[[devices]]
id = "gate-west"
kind = "temp_gate"
transport = "serial"
profile = "serial-temp-gate"
location = {{ building = "west-gate" }}
serial = {{ port = "{self.serial['gate-west'].link}" }}

[[devices]]
id = "gate-east"
kind = "temp_gate"
transport = "http"
profile = "http-temp-gate"
location = {{ building = "east-gate" }}
http = {{ token = "{HTTP_TOKENS['gate-east']}" }}

[[devices]]
id = "door-7-1"
kind = "access"
transport = "http"
profile = "http-access-controller"
location = {{ building = "7", unit = "1" }}
http = {{ token = "{HTTP_TOKENS['door-7-1']}" }}
"""

    async def attach(self, config: GatewayConfig, pin_factory: Any, clock: Any
                     ) -> dict[str, SimDevice]:
        """A handle for every device of the running gateway's config."""
        broker = config.broker
        client = aiomqtt.Client(broker.host, broker.port, identifier="sim-devices")
        await self._stack.enter_async_context(client)
        for device in config.devices:
            if isinstance(device, GpioDevice):
                elder = SimulatedElder(pin_factory, device.gpio.pin, clock)
                self.devices[device.id] = GpioButtonHandle(elder, clock,
                                                           device.gpio.long_press_s)
            elif isinstance(device, MqttDevice) and device.profile is not None:
                sim = MqttDeviceSimulator(client, device.mqtt.topic,
                                          self.profiles.get(device.profile))
                self.devices[device.id] = MqttHandle(sim)
            elif isinstance(device, HttpDevice) and device.profile is not None:
                pusher = HttpPusher(self.profiles.get(device.profile),
                                    f"http://127.0.0.1:{self.http_port}", device.id,
                                    device.http.token)
                await self._stack.enter_async_context(pusher)
                self.devices[device.id] = HttpHandle(pusher)
        for device_id, modbus in self.modbus.items():
            self.devices[device_id] = ModbusHandle(modbus)
        for device_id, serial in self.serial.items():
            self.devices[device_id] = SerialHandle(serial)
        return self.devices
