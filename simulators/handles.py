"""One way to drive any simulated device, whatever its transport."""

from __future__ import annotations

from typing import ClassVar, Protocol

from drivers.gb26875.states import ComponentState
from drivers.json_map import JsonMap
from drivers.modbus import ModbusMap
from gateway.core.clock import Clock
from simulators.elder_button import SimulatedElder
from simulators.gb26875_device import Delivery, TransmissionDevice
from simulators.hikvision_terminal import RESIDENT, HikvisionTerminal
from simulators.http_pusher import HttpPusher
from simulators.modbus_device import Fault as ModbusFault
from simulators.modbus_device import SimulatedDevice
from simulators.mqtt_device import MqttDeviceSimulator
from simulators.onenet_platform import OneNetPlatform
from simulators.serial_device import SerialDeviceSimulator
from simulators.zigbee2mqtt import Zigbee2MqttDevice


class SimDevice(Protocol):
    """What a scenario can make a simulated device do."""

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None: ...

    async def die(self) -> None:
        """Stop answering or reporting, as a device with a flat battery or cut cable."""
        ...

    async def revive(self) -> None: ...


class MqttHandle:
    """An MQTT device; `state` holds the readings its check-ins repeat."""

    def __init__(self, device: MqttDeviceSimulator,
                 state: dict[str, float] | None = None) -> None:
        self.device = device
        self.dead = False
        self.state = dict(state or {})

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if not self.dead:
            await self.device.report(readings, event)
            self.state.update(readings or {})

    async def heartbeat(self) -> None:
        """A check-in: the current readings, with the profile's `heartbeat` event if it has
        one (as an NB-IoT uplink does); zigbee2mqtt relays a device's state alone."""
        if self.dead:
            return
        beat = "heartbeat" if self.device.payloads.reports("heartbeat") else None
        await self.device.report(self.state, beat)

    async def die(self) -> None:
        """Silent from now on; a zigbee2mqtt device is also given up by zigbee2mqtt, as it
        does once the device's availability timeout has passed."""
        self.dead = True
        if isinstance(self.device, Zigbee2MqttDevice):
            await self.device.available(False)

    async def revive(self) -> None:
        self.dead = False
        if isinstance(self.device, Zigbee2MqttDevice):
            await self.device.available(True)


class GpioButtonHandle:
    """A wired button: `press` is a short press, `cancel` a long one."""

    def __init__(self, elder: SimulatedElder, clock: Clock, long_press_s: float) -> None:
        self.elder = elder
        self._clock = clock
        self._long = long_press_s

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if event == "press":
            await self.elder.press(0.3)
        elif event == "cancel":
            await self.elder.press(self._long + 0.2)
        elif event is not None:
            raise ValueError(f"a GPIO button cannot report {event}")

    async def die(self) -> None:
        raise ValueError("a wired button cannot die in simulation")

    async def revive(self) -> None:
        pass


class ModbusHandle:
    """A Modbus device: readings set registers, events set the bits that raise them."""

    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        mapping = device.profile.mapping
        assert isinstance(mapping, ModbusMap)
        self._points = mapping.points

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        for name, value in (readings or {}).items():
            self.device.set_reading(name, value)
        if event is None:
            return
        for name, point in self._points.items():
            if point.on_set == event:
                self.device.raise_alarm(name)
                return
            if point.on_clear == event:
                self.device.clear_alarm(name)
                return
            if event in point.map.values():
                self.device.set_state(name, event)
                return
        raise ValueError(f"{self.device.profile.name} cannot report {event}")

    async def die(self) -> None:
        self.device.fail(ModbusFault.NO_ANSWER)

    async def revive(self) -> None:
        self.device.heal()


class SerialHandle:
    """A serial device: sends the frame whose fields carry the event and readings."""

    def __init__(self, device: SerialDeviceSimulator) -> None:
        self.device = device

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if not self.device.connected:
            return
        wanted = dict(readings or {})
        for spec in self.device.format.frames:
            values: dict[str, float | int | str] = {}
            carries = event is not None and spec.event == event
            for field in spec.fields:
                if field.reading in wanted:
                    values[field.name] = wanted[field.reading]
                if event is not None and field.event == event:
                    values[field.name] = field.equals if field.equals is not None else 1
                    carries = True
                for code, name in field.map.items():
                    if name == event:
                        values[field.name] = int(code) if code.isdigit() else code
                        carries = True
            if carries or (event is None and values):
                await self.device.send(spec.name, values)
                return
        raise ValueError(f"{self.device.profile.name} has no frame for {event} {wanted}")

    async def heartbeat(self) -> None:
        if self.device.connected:
            await self.device.send("heartbeat")

    async def die(self) -> None:
        self.device.disconnect()

    async def revive(self) -> None:
        self.device.reconnect()


class HttpHandle:
    """An HTTP-pushing device: one push per report."""

    def __init__(self, pusher: HttpPusher) -> None:
        self.pusher = pusher
        self.dead = False

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if self.dead:
            return
        values: dict[str, object] = {}
        mapping = self.pusher.mapping
        for name, value in (readings or {}).items():
            values[next(r.path for r in mapping.readings if r.reading == name)] = value
        if event is not None:
            for e in mapping.events:
                if e.event == event:
                    values[e.path] = e.equals
                for code, name in e.map.items():
                    if name == event:
                        values[e.path] = int(code) if code.isdigit() else code
        await self.pusher.push(values)

    async def heartbeat(self) -> None:
        if not self.dead:
            await self.pusher.heartbeat()

    async def die(self) -> None:
        self.dead = True

    async def revive(self) -> None:
        self.dead = False


class OneNetHandle:
    """An NB-IoT device on OneNET: each report is a thing-model property push of the
    platform (signed, encrypted, retried), `state` the properties its check-ins repeat."""

    def __init__(self, platform: OneNetPlatform, product_id: str, device_name: str,
                 mapping: JsonMap, state: dict[str, float] | None = None) -> None:
        self.platform = platform
        self.product_id = product_id
        self.device_name = device_name
        self._map = mapping
        self.dead = False
        self.state = self._params(state or {}, None)

    def _params(self, readings: dict[str, float], event: str | None) -> dict[str, object]:
        params: dict[str, object] = {}
        for r in self._map.readings:
            if r.reading in readings:
                params[_identifier(r.path)] = (readings[r.reading] - r.offset) / r.scale
        for e in self._map.events:
            for code, name in e.map.items():
                if name == event:
                    params[_identifier(e.path)] = int(code) if code.isdigit() else code
        return params

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if self.dead:
            return
        params = self._params(readings or {}, event)
        self.state.update({k: v for k, v in params.items()
                           if any(_identifier(r.path) == k for r in self._map.readings)})
        await self.platform.push(self.platform.property_notify(
            self.product_id, self.device_name, params))

    async def heartbeat(self) -> None:
        if not self.dead:
            await self.platform.push(self.platform.property_notify(
                self.product_id, self.device_name, self.state))

    async def die(self) -> None:
        self.dead = True

    async def revive(self) -> None:
        self.dead = False


class HikvisionHandle:
    """A Hikvision terminal: each report is one notification pushed as the terminal would,
    a person's name, numbers and face picture included where one stands at it."""

    # event -> (majorEventType, subEventType, with a person)
    _CODES: ClassVar[dict[str, tuple[int, int, bool]]] = {
        "granted": (5, 0x4B, True), "denied": (5, 0x09, True),
        "door_opened": (5, 0x19, False), "door_closed": (5, 0x1A, False),
        "forced_open": (5, 0x1B, False), "held_open": (5, 0x1C, False),
        "tamper": (1, 0x404, False), "tamper_cleared": (1, 0x405, False),
        "duress": (1, 0x40A, False)}

    def __init__(self, terminal: HikvisionTerminal) -> None:
        self.terminal = terminal
        self.dead = False

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if self.dead:
            return
        terminal = self.terminal
        readings = readings or {}
        if "body_temp_c" in readings:  # a face-temperature terminal's passage
            mask = "no" if readings.get("mask") == 0 or event == "no_mask" else "yes"
            await terminal.push(terminal.temperature(readings["body_temp_c"],
                                                     abnormal=event == "fever", mask=mask))
        elif event in self._CODES:
            major, minor, person = self._CODES[event]
            await terminal.push(terminal.access(major, minor,
                                                RESIDENT if person else None))
        elif event is not None:
            raise ValueError(f"a Hikvision terminal does not report {event!r}")

    async def heartbeat(self) -> None:
        if not self.dead:
            await self.terminal.heartbeat()

    async def die(self) -> None:
        self.dead = True

    async def revive(self) -> None:
        self.dead = False


def _confirmed(delivery: Delivery) -> None:
    if not delivery.confirmed:
        raise RuntimeError(f"the gateway did not confirm after {delivery.sends} send(s)")


class TransmissionDeviceHandle:
    """A fire panel's user information transmission device (GB/T 26875.3): its heartbeat."""

    def __init__(self, device: TransmissionDevice) -> None:
        self.device = device
        self.dead = False

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if readings or event not in (None, "heartbeat"):
            raise ValueError("a transmission device reports its components' states")
        await self.heartbeat()

    async def heartbeat(self) -> None:
        """A heartbeat frame; one the gateway does not confirm is simply missed."""
        if not self.dead:
            await self.device.heartbeat()

    async def die(self) -> None:
        self.dead = True

    async def revive(self) -> None:
        self.dead = False


def _identifier(path: str) -> str:
    """`data.params.<identifier>.value` -> the thing model's identifier."""
    return path.split(".")[2]


class FirePanelComponentHandle:
    """A detector on a fire panel: its state changes go out through the panel's
    transmission device; `component` is system-zone-position, e.g. `1-3-017`."""

    _STATES: ClassVar[dict[str, ComponentState]] = {
        "alarm": ComponentState.FIRE, "fault": ComponentState.FAULT,
        "supervision": ComponentState.SUPERVISION, "shielded": ComponentState.SHIELDED}

    def __init__(self, device: TransmissionDevice, component: str) -> None:
        self.device = device
        self.component = component

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if readings:
            raise ValueError("a detector behind a fire panel reports states, not readings")
        if event is None:
            return
        if event.endswith("_cleared") or event == "restored":
            state = ComponentState.NORMAL
        elif event in self._STATES:
            state = ComponentState.NORMAL | self._STATES[event]
        else:
            raise ValueError(f"a fire panel's detector cannot report {event}")
        _confirmed(await self.device.component(self.component, state))

    async def die(self) -> None:
        raise ValueError("a detector behind a fire panel reports through its panel")

    async def revive(self) -> None:
        raise ValueError("a detector behind a fire panel reports through its panel")
