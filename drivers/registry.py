"""Which driver serves which configured devices: one owner per physical bus or port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from drivers.elder_button_gpio import ElderButtonGpio
from drivers.intake import MessageIntake
from drivers.profile import Profile, ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from gateway.core.clock import Clock
from gateway.core.config import (
    AnyDevice,
    CtwingDevice,
    DahuaDevice,
    GatewayConfig,
    Gb26875Device,
    GpioDevice,
    HikvisionDevice,
    HttpDevice,
    ModbusDevice,
    OneNetDevice,
    SerialDevice,
)
from gateway.core.counters import Counters
from gateway.core.journaling import ReceiptBook

if TYPE_CHECKING:
    from drivers.platform_push import PushRoutes  # aiohttp's server: only when needed


class Driver(Protocol):
    @property
    def name(self) -> str: ...

    # the gateway hands every driver a MessageIntake; most need only its Intake part
    async def run(self, intake: MessageIntake) -> None: ...


@dataclass(frozen=True, slots=True)
class Context:
    config: GatewayConfig
    profiles: ProfileLibrary
    clock: Clock
    counters: Counters
    pseudonymise: Pseudonymiser | None
    pin_factory: Any
    receipts: ReceiptBook | None = None  # to recognise a message a device gives again
    # whether what waits for the rules or the MQTT sink is beyond what may stand in front
    # of an alarm: the push port then holds the others' pushes (and refuses them, 503, if
    # it lasts)
    behind: Callable[[], bool] | None = None


def build_drivers(ctx: Context) -> list[Driver]:
    """Every driver task the configuration needs (MQTT ingress rides on the MQTT link)."""
    config = ctx.config
    drivers: list[Driver] = [
        ElderButtonGpio(d, ctx.clock, ctx.counters, ctx.pin_factory)
        for d in config.devices if isinstance(d, GpioDevice)
    ]
    # each transport's library only where its devices are configured: pymodbus alone is
    # some 7 MiB of a gateway that reads MQTT devices
    for bus in config.buses:
        on_bus = [(d, _profile(ctx, d)) for d in config.devices
                  if isinstance(d, ModbusDevice) and d.modbus.bus == bus.id]
        if on_bus:
            from drivers.modbus.bus import ModbusBusDriver

            drivers.append(ModbusBusDriver(bus, on_bus, ctx.clock, ctx.counters))
    serial = [d for d in config.devices if isinstance(d, SerialDevice)]
    if serial:
        from drivers.serial_frames.driver import SerialFrameDriver

        drivers += [
            SerialFrameDriver(d, _profile(ctx, d), ctx.clock, ctx.counters, ctx.pseudonymise)
            for d in serial
        ]
    pushed = [(d, _profile(ctx, d)) for d in config.devices if isinstance(d, HttpDevice)]
    platforms = _platforms(ctx)
    if (pushed or platforms) and config.http is not None:
        from drivers.http_push import HttpPushReceiver  # aiohttp's server: only when needed

        drivers.append(HttpPushReceiver(config.http, pushed, ctx.clock, ctx.counters,
                                        ctx.pseudonymise,
                                        shutdown_timeout_s=config.shutdown_timeout_s,
                                        platforms=platforms,
                                        alarm_kinds=frozenset(config.broker.alarm_lane_kinds),
                                        rate_hz=config.limits.device_rate_hz,
                                        burst_s=config.limits.device_burst_s,
                                        behind=ctx.behind))
    fire_panels = [d for d in config.devices if isinstance(d, Gb26875Device)]
    if fire_panels and config.gb26875 is not None:
        from drivers.gb26875.server import Gb26875Server

        drivers.append(Gb26875Server(config.gb26875, fire_panels, ctx.clock, ctx.counters,
                                     ctx.receipts))
    dahua = [d for d in config.devices if isinstance(d, DahuaDevice)]
    if dahua:
        from drivers.dahua.client import DahuaStream  # aiohttp's client: only when needed

        drivers += [DahuaStream(d, ctx.clock, ctx.counters, ctx.pseudonymise, ctx.receipts)
                    for d in dahua]
    return drivers


def _platforms(ctx: Context) -> list[PushRoutes]:
    """The receivers served on the HTTP push port beside the devices' own pushes: NB-IoT
    platforms' and Hikvision terminals'."""
    config = ctx.config
    out: list[PushRoutes] = []
    onenet = [(d, _profile(ctx, d)) for d in config.devices if isinstance(d, OneNetDevice)]
    if onenet and config.onenet is not None:
        from drivers.onenet.receiver import OneNetReceiver

        out.append(OneNetReceiver(config.onenet, onenet, ctx.clock, ctx.counters,
                                  ctx.receipts, ctx.pseudonymise))
    ctwing = [(d, _profile(ctx, d)) for d in config.devices if isinstance(d, CtwingDevice)]
    if ctwing and config.ctwing is not None:
        from drivers.ctwing.receiver import CtwingReceiver

        out.append(CtwingReceiver(config.ctwing, ctwing, ctx.clock, ctx.counters,
                                  ctx.receipts, ctx.pseudonymise))
    hikvision = [d for d in config.devices if isinstance(d, HikvisionDevice)]
    if hikvision and config.http is not None:
        from drivers.hikvision.push import HikvisionPushes

        out.append(HikvisionPushes(hikvision, config.http, ctx.clock, ctx.counters,
                                   ctx.pseudonymise, ctx.receipts))
    return out


def _profile(ctx: Context, device: AnyDevice) -> Profile:
    assert device.profile is not None  # the config check requires one
    return ctx.profiles.get(device.profile)
