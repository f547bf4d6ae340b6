"""A simulated compound: devices on every transport, their simulators, and the gateway config.

    async with SimulatedSite(workdir) as site:          # simulators up, ports known
        text = site.config(broker_port, store_url)      # the gateway's TOML
        ...start the gateway, wait for `gateway.intake_open()`...
        devices = await site.attach(config, gateway.pin_factory, gateway.clock)

From `attach` on, every device that reports on its own (MQTT, HTTP, serial) sends what its
real counterpart sends while idle: a check-in at once, then one every heartbeat interval
of its configuration or profile, on the given clock. Polled Modbus devices answer the
gateway's polls; wired buttons need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import aiomqtt

from drivers.json_map import JsonMap
from drivers.profile import Profile, ProfileLibrary
from gateway.core.clock import Clock
from gateway.core.config import (
    AnyDevice,
    GatewayConfig,
    Gb26875Device,
    GpioDevice,
    HikvisionDevice,
    HttpDevice,
    MqttDevice,
    OneNetDevice,
)
from gateway.core.kinds import MODELS
from gateway.ops.private_servers import free_port
from simulators.elder_button import SimulatedElder
from simulators.gb26875_device import TransmissionDevice
from simulators.handles import (
    FirePanelComponentHandle,
    GpioButtonHandle,
    HikvisionHandle,
    HttpHandle,
    ModbusHandle,
    MqttHandle,
    OneNetHandle,
    SerialHandle,
    SimDevice,
    TransmissionDeviceHandle,
)
from simulators.hikvision_terminal import HikvisionTerminal
from simulators.http_pusher import HttpPusher
from simulators.modbus_device import SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator
from simulators.mqtt_device import MqttDeviceSimulator
from simulators.onenet_platform import OneNetPlatform
from simulators.serial_device import SerialDeviceSimulator
from simulators.zigbee2mqtt import Zigbee2MqttDevice

log = logging.getLogger(__name__)

SITE = "demo"
KEY_ENV = "SCGW_PSEUDONYM_KEY"
HTTP_TOKENS = {"gate-east": "gate-east-push-token-0001", "door-7-1": "door-7-1-push-token-0001"}
# the compound's OneNET Studio push instance (secure mode)
ONENET_TOKEN = "demo-onenet-instance-token"
ONENET_AES_KEY = "Dm0k3yOneNet16ch"
ONENET_PRODUCT = "Xq7Lp2Ab9c"
# the push credentials set in the Hikvision terminals' alarm-server settings
HIKVISION_PASSWORDS = {"door-7-2": "door-7-2-push-pass", "gate-south": "gate-south-push-pass"}


# a device at rest: full battery, level cover, normal temperatures, no alarm
_AT_REST: dict[str, float] = {"battery_pct": 90, "body_temp_c": 36.5, "temperature_c": 22,
                              "tilt_deg": 1.0, "installed_tilt_deg": 1.0,
                              "water_level_cm": 20, "mask": 1, "linkquality": 120}


def _healthy(device: SimulatedDevice) -> None:
    """A Modbus device at rest: its registers hold the values of `_AT_REST`."""
    for name in MODELS[device.profile.kind].readings:
        if name in _AT_REST and any(p.reading == name
                                    for p in device.register_map.points.values()):
            device.set_reading(name, _AT_REST[name])


def _at_rest(profile: Profile) -> dict[str, float]:
    """The readings at rest that a JSON device's check-ins carry."""
    assert isinstance(profile.mapping, JsonMap)
    return {r.reading: _AT_REST[r.reading] for r in profile.mapping.readings
            if r.reading in _AT_REST}


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
        self.gb26875_port = free_port()
        self.console_port = free_port()  # the duty office's console
        self.devices: dict[str, SimDevice] = {}
        # device id -> the interval at which its simulator sends a heartbeat
        self.heartbeats: dict[str, float] = {}
        self._beating: list[asyncio.Task[None]] = []

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

    def config(self, broker_port: int, store_url: str, *, poll_s: float = 2.0,
               alarm_poll_s: float = 0.5) -> str:
        """The TOML of the compound's gateway; `poll_s` and `alarm_poll_s` for every Modbus
        device."""
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

[gb26875]
host = "127.0.0.1"
port = {self.gb26875_port}

[console]
host = "127.0.0.1"
port = {self.console_port}

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

# Zigbee devices through zigbee2mqtt, which says when it loses one on <topic>/availability;
# these report their battery hourly, so an hourly heartbeat backs zigbee2mqtt up
[[devices]]
id = "sos-7-1-301"
kind = "elder_button"
transport = "mqtt"
profile = "heiman-hs1eb"
heartbeat_s = 3600
location = {{ building = "7", unit = "1", floor = 3 }}
mqtt = {{ topic = "zigbee2mqtt/sos-7-1-301" }}

[[devices]]
id = "smoke-3-1"
kind = "smoke"
transport = "mqtt"
profile = "heiman-hs1sa"
heartbeat_s = 3600
location = {{ building = "3", unit = "1", floor = 1 }}
mqtt = {{ topic = "zigbee2mqtt/smoke-3-1" }}

[[devices]]
id = "smoke-3-2"
kind = "smoke"
transport = "modbus"
profile = "modbus-smoke-detector"
location = {{ building = "3", unit = "2", floor = 4 }}
modbus = {{ bus = "rs485-1", unit = 2, poll_s = {poll_s}, alarm_poll_s = {alarm_poll_s} }}

# building 3's fire alarm control panel reports through its user information transmission
# device over GB/T 26875.3; its detectors are mapped by system-zone-position
[[devices]]
id = "fire-panel-3"
kind = "smoke"
transport = "gb26875"
heartbeat_s = 30
location = {{ building = "3" }}
gb26875 = {{ address = 3001 }}

[[devices]]
id = "smoke-3-2-017"
kind = "smoke"
transport = "gb26875"
location = {{ building = "3", unit = "2", floor = 2 }}
gb26875 = {{ via = "fire-panel-3", component = "1-3-017", zone = "east stair" }}

[[devices]]
id = "smoke-3-5-001"
kind = "smoke"
transport = "gb26875"
location = {{ building = "3", unit = "1", floor = 5 }}
gb26875 = {{ via = "fire-panel-3", component = "1-5-001", zone = "lift lobby" }}

[[devices]]
id = "door-5-1"
kind = "access"
transport = "modbus"
profile = "modbus-door-io"
location = {{ building = "5", unit = "1" }}
modbus = {{ bus = "rs485-1", unit = 5, poll_s = {poll_s}, alarm_poll_s = {alarm_poll_s} }}

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
modbus = {{ bus = "tcp-1", unit = 1, poll_s = {poll_s}, alarm_poll_s = {alarm_poll_s} }}

[[devices]]
id = "gate-north"
kind = "temp_gate"
transport = "modbus"
profile = "modbus-temp-gate"
location = {{ building = "north-gate" }}
modbus = {{ bus = "tcp-1", unit = 4, poll_s = {poll_s}, alarm_poll_s = {alarm_poll_s} }}

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

[[devices]]
id = "manhole-e3"
kind = "manhole"
transport = "onenet"
profile = "onenet-manhole"
location = {{ building = "east-road" }}
onenet = {{ product_id = "{ONENET_PRODUCT}", device_name = "manhole-e3" }}

[[devices]]
id = "door-7-2"
kind = "access"
transport = "hikvision"
heartbeat_s = 60
location = {{ building = "7", unit = "2" }}
[devices.hikvision]
username = "alarmserver"
password = "{HIKVISION_PASSWORDS['door-7-2']}"
addresses = ["127.0.0.1"]

[[devices]]
id = "gate-south"
kind = "temp_gate"
transport = "hikvision"
heartbeat_s = 60
location = {{ building = "south-gate" }}
[devices.hikvision]
username = "alarmserver"
password = "{HIKVISION_PASSWORDS['gate-south']}"
addresses = ["127.0.0.1"]

[onenet]
token = "{ONENET_TOKEN}"
aes_key = "{ONENET_AES_KEY}"
"""

    async def attach(self, config: GatewayConfig, pin_factory: Any, clock: Clock
                     ) -> dict[str, SimDevice]:
        """A handle for every device of the running gateway's config; the devices that
        report on their own check in at once and then every heartbeat interval.

        Attach once the gateway listens (`Gateway.intake_open`): a check-in sent before is
        lost, as it would be on a real site.
        """
        broker = config.broker
        client = aiomqtt.Client(broker.host, broker.port, identifier="sim-devices")
        await self._stack.enter_async_context(client)
        beats: dict[str, Callable[[], Awaitable[None]]] = {}
        for device in config.devices:
            if isinstance(device, GpioDevice):
                elder = SimulatedElder(pin_factory, device.gpio.pin, clock)
                self.devices[device.id] = GpioButtonHandle(elder, clock,
                                                           device.gpio.long_press_s)
            elif isinstance(device, MqttDevice) and device.profile is not None:
                profile = self.profiles.get(device.profile)
                if profile.availability_for(device.mqtt.topic) is not None:
                    bridged = Zigbee2MqttDevice(client, device.mqtt.topic, profile)
                    await bridged.available(True)  # zigbee2mqtt found it at its start
                    sim: MqttDeviceSimulator = bridged
                else:
                    sim = MqttDeviceSimulator(client, device.mqtt.topic, profile)
                handle = MqttHandle(sim, _at_rest(profile))
                self.devices[device.id] = handle
                beats[device.id] = handle.heartbeat
            elif isinstance(device, HttpDevice) and device.profile is not None:
                pusher = HttpPusher(self.profiles.get(device.profile),
                                    f"http://127.0.0.1:{self.http_port}", device.id,
                                    device.http.token)
                await self._stack.enter_async_context(pusher)
                http = HttpHandle(pusher)
                self.devices[device.id] = http
                beats[device.id] = http.heartbeat
            elif isinstance(device, OneNetDevice) and device.profile is not None:
                handle_ = await self._onenet(config, device)
                self.devices[device.id] = handle_
                beats[device.id] = handle_.heartbeat
        panels: dict[str, TransmissionDevice] = {}
        for device in config.devices:
            if (isinstance(device, Gb26875Device) and device.gb26875.address is not None
                    and config.gb26875 is not None):
                panel = TransmissionDevice(config.gb26875.host, config.gb26875.port,
                                           device.gb26875.address)
                panels[device.id] = await self._stack.enter_async_context(panel)
                transmitter = TransmissionDeviceHandle(panel)
                self.devices[device.id] = transmitter
                beats[device.id] = transmitter.heartbeat
        for device in config.devices:
            if isinstance(device, Gb26875Device) and device.gb26875.via in panels:
                self.devices[device.id] = FirePanelComponentHandle(
                    panels[device.gb26875.via], str(device.gb26875.component))
            elif isinstance(device, HikvisionDevice):
                terminal = HikvisionTerminal(
                    f"http://127.0.0.1:{self.http_port}/hikvision/{device.id}",
                    username=device.hikvision.username, password=device.hikvision.password,
                    auth=device.hikvision.auth)
                await self._stack.enter_async_context(terminal)
                hikvision = HikvisionHandle(terminal)
                self.devices[device.id] = hikvision
                beats[device.id] = hikvision.heartbeat
        for device_id, modbus in self.modbus.items():
            self.devices[device_id] = ModbusHandle(modbus)
        for device_id, serial in self.serial.items():
            wired = SerialHandle(serial)
            self.devices[device_id] = wired
            beats[device_id] = wired.heartbeat
        by_id = {d.id: d for d in config.devices}
        for device_id, beat in beats.items():
            interval = self._interval(by_id[device_id])
            if interval > 0:
                self.heartbeats[device_id] = interval
                self._beating.append(asyncio.create_task(
                    _keep_beating(device_id, beat, interval, clock),
                    name=f"sim[{device_id}].heartbeat"))
        self._stack.push_async_callback(self._stop_beating)
        return self.devices

    async def _onenet(self, config: GatewayConfig, device: OneNetDevice) -> OneNetHandle:
        """The device behind the compound's OneNET push instance."""
        assert config.onenet is not None
        assert device.profile is not None
        assert device.onenet.device_name is not None
        platform = OneNetPlatform(f"http://127.0.0.1:{self.http_port}{config.onenet.path}",
                                  config.onenet.token, config.onenet.aes_key)
        await self._stack.enter_async_context(platform)
        profile = self.profiles.get(device.profile)
        assert isinstance(profile.mapping, JsonMap)
        return OneNetHandle(platform, device.onenet.product_id or "", device.onenet.device_name,
                            profile.mapping, _at_rest(profile))

    def _interval(self, device: AnyDevice) -> float:
        if device.heartbeat_s:
            return device.heartbeat_s
        return self.profiles.get(device.profile).heartbeat_s if device.profile else 0.0

    async def _stop_beating(self) -> None:
        for task in self._beating:
            task.cancel()
        await asyncio.gather(*self._beating, return_exceptions=True)
        self._beating.clear()


async def _keep_beating(device: str, beat: Callable[[], Awaitable[None]], interval: float,
                        clock: Clock) -> None:
    """Check in now and every `interval` after, on a fixed schedule however long a check-in
    takes; one that fails is simply missed, as a device's would be."""
    due = clock.monotonic()
    while True:
        try:
            await beat()
        except (OSError, aiohttp.ClientError, aiomqtt.MqttError) as exc:
            log.info("simulated %s could not check in: %s", device, exc)
        due += interval
        while due < clock.monotonic():  # a device sends no check-ins it missed
            due += interval
        if due > clock.monotonic():  # due now (the check-in took until then): at once
            await clock.sleep(due - clock.monotonic())
