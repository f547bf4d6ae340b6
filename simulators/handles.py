"""One way to drive any simulated device, whatever its transport."""

from __future__ import annotations

from typing import Protocol

from gateway.clock import Clock
from simulators.elder_button import SimulatedElder
from simulators.mqtt_device import MqttDeviceSimulator


class SimDevice(Protocol):
    """What a scenario can make a simulated device do."""

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None: ...

    async def die(self) -> None:
        """Stop answering or reporting, as a device with a flat battery or cut cable."""
        ...

    async def revive(self) -> None: ...


class MqttHandle:
    def __init__(self, device: MqttDeviceSimulator) -> None:
        self.device = device
        self.dead = False

    async def report(self, readings: dict[str, float] | None = None,
                     event: str | None = None) -> None:
        if not self.dead:
            await self.device.report(readings, event)

    async def die(self) -> None:
        self.dead = True

    async def revive(self) -> None:
        self.dead = False


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
