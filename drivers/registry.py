"""Which driver serves which configured devices: one owner per physical bus or port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from drivers.elder_button_gpio import ElderButtonGpio
from drivers.intake import Intake
from drivers.modbus.bus import ModbusBusDriver
from drivers.profile import Profile, ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames.driver import SerialFrameDriver
from gateway.core.clock import Clock
from gateway.core.config import (
    DahuaDevice,
    GatewayConfig,
    GpioDevice,
    HikvisionDevice,
    HttpDevice,
    ModbusDevice,
    SerialDevice,
)
from gateway.core.counters import Counters
from gateway.core.journaling import ReceiptBook


class Driver(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self, intake: Intake) -> None: ...


@dataclass(frozen=True, slots=True)
class Context:
    config: GatewayConfig
    profiles: ProfileLibrary
    clock: Clock
    counters: Counters
    pseudonymise: Pseudonymiser | None
    pin_factory: Any
    # where drivers recognise a message a device sends again (the journal's receipts)
    receipts: ReceiptBook | None = None


def build_drivers(ctx: Context) -> list[Driver]:
    """Every driver task the configuration needs (MQTT ingress rides on the MQTT link)."""
    config = ctx.config
    drivers: list[Driver] = [
        ElderButtonGpio(d, ctx.clock, ctx.counters, ctx.pin_factory)
        for d in config.devices if isinstance(d, GpioDevice)
    ]
    for bus in config.buses:
        on_bus = [(d, _profile(ctx, d)) for d in config.devices
                  if isinstance(d, ModbusDevice) and d.modbus.bus == bus.id]
        if on_bus:
            drivers.append(ModbusBusDriver(bus, on_bus, ctx.clock, ctx.counters))
    drivers += [
        SerialFrameDriver(d, _profile(ctx, d), ctx.clock, ctx.counters, ctx.pseudonymise)
        for d in config.devices if isinstance(d, SerialDevice)
    ]
    pushed = [(d, _profile(ctx, d)) for d in config.devices if isinstance(d, HttpDevice)]
    hikvision = [d for d in config.devices if isinstance(d, HikvisionDevice)]
    if (pushed or hikvision) and config.http is not None:
        # aiohttp's server: only when needed
        from drivers.hikvision.push import HikvisionPushes
        from drivers.http_push import HttpPushReceiver, PushRoutes

        routes: list[PushRoutes] = []
        if hikvision:
            routes.append(HikvisionPushes(hikvision, config.http, ctx.clock, ctx.counters,
                                          ctx.pseudonymise, ctx.receipts))
        drivers.append(HttpPushReceiver(config.http, pushed, ctx.clock, ctx.counters,
                                        ctx.pseudonymise,
                                        shutdown_timeout_s=config.shutdown_timeout_s,
                                        routes=routes))
    dahua = [d for d in config.devices if isinstance(d, DahuaDevice)]
    if dahua:
        from drivers.dahua.client import DahuaStream  # aiohttp's client: only when needed

        drivers += [DahuaStream(d, ctx.clock, ctx.counters, ctx.pseudonymise, ctx.receipts)
                    for d in dahua]
    return drivers


def _profile(ctx: Context, device: ModbusDevice | SerialDevice | HttpDevice) -> Profile:
    assert device.profile is not None  # the config check requires one
    return ctx.profiles.get(device.profile)
