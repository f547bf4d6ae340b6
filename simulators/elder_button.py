"""A simulated elder at a GPIO button: drives gpiozero mock pins like a finger would."""

from __future__ import annotations

from typing import Any

from gateway.core.clock import Clock


class SimulatedElder:
    """Presses a button wired between `pin` and ground (the pin reads low while pressed)."""

    def __init__(self, pin_factory: Any, pin: int, clock: Clock) -> None:
        self._pin = pin_factory.pin(pin)
        self._clock = clock

    def down(self) -> None:
        self._pin.drive_low()

    def up(self) -> None:
        self._pin.drive_high()

    async def press(self, hold_s: float = 0.3) -> None:
        """A press held for `hold_s` seconds of the clock."""
        self.down()
        await self._clock.sleep(hold_s)
        self.up()
