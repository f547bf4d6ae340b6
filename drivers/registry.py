"""Which driver serves which configured devices: one owner per physical bus or port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from drivers.elder_button_gpio import ElderButtonGpio
from drivers.intake import Intake
from drivers.profile import ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from gateway.clock import Clock
from gateway.config import GatewayConfig, GpioDevice
from gateway.counters import Counters


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


def build_drivers(ctx: Context) -> list[Driver]:
    """Every driver task the configuration needs (MQTT ingress rides on the MQTT link)."""
    config = ctx.config
    drivers: list[Driver] = [
        ElderButtonGpio(d, ctx.clock, ctx.counters, ctx.pin_factory)
        for d in config.devices if isinstance(d, GpioDevice)
    ]
    return drivers
