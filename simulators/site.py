"""A simulated compound: a gateway config with devices on every transport, and their simulators."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.profile import ProfileLibrary
from gateway.config import GatewayConfig, GpioDevice, MqttDevice
from simulators.elder_button import SimulatedElder
from simulators.handles import GpioButtonHandle, MqttHandle, SimDevice
from simulators.mqtt_device import MqttDeviceSimulator

SITE = "demo"


def site_config(workdir: Path, broker_port: int, store_url: str) -> str:
    """The TOML of the simulated compound's gateway."""
    return f"""\
# Written by the simulated compound; `scgw run --config {workdir}/gateway.toml` runs the
# same gateway (the simulators must be running for devices to report).
site = "{SITE}"
gpio_factory = "mock"   # simulated GPIO pins

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
path = "{workdir}/journal.db"

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
heartbeat_s = 10
location = {{ building = "3", unit = "1", floor = 1 }}
mqtt = {{ topic = "zigbee2mqtt/smoke-3-1" }}

[[devices]]
id = "smoke-3-2"
kind = "smoke"
transport = "mqtt"
profile = "zigbee-smoke"
location = {{ building = "3", unit = "2", floor = 4 }}
mqtt = {{ topic = "zigbee2mqtt/smoke-3-2" }}

[[devices]]
id = "manhole-n1"
kind = "manhole"
transport = "mqtt"
profile = "nbiot-manhole"
location = {{ building = "north-gate" }}
mqtt = {{ topic = "nbiot/manhole-n1/up" }}
"""


class SimulatedSite:
    """Attaches a simulator to every device of a running gateway's config."""

    def __init__(self, config: GatewayConfig, pin_factory: Any, clock: Any) -> None:
        self._config = config
        self._pin_factory = pin_factory
        self._clock = clock
        self._profiles = ProfileLibrary()
        self.devices: dict[str, SimDevice] = {}

    async def attach(self, stack: contextlib.AsyncExitStack) -> dict[str, SimDevice]:
        broker = self._config.broker
        client = aiomqtt.Client(broker.host, broker.port, identifier="sim-devices")
        await stack.enter_async_context(client)
        for device in self._config.devices:
            if isinstance(device, GpioDevice):
                elder = SimulatedElder(self._pin_factory, device.gpio.pin, self._clock)
                self.devices[device.id] = GpioButtonHandle(elder, self._clock,
                                                           device.gpio.long_press_s)
            elif isinstance(device, MqttDevice) and device.profile is not None:
                sim = MqttDeviceSimulator(client, device.mqtt.topic,
                                          self._profiles.get(device.profile))
                self.devices[device.id] = MqttHandle(sim)
        return self.devices
