"""Where drivers hand over what they parsed."""

from __future__ import annotations

from typing import Protocol

from gateway.model import DeviceEvent, Reading


class Intake(Protocol):
    async def event(self, event: DeviceEvent) -> None:
        """Return once the event is durable: from then on it counts as received."""
        ...

    def seen(self, device: str) -> None:
        """A well-formed message arrived from `device`: it is alive."""
        ...

    def reading(self, reading: Reading) -> None:
        """Queue telemetry; it may be dropped under pressure, with a counter."""
        ...
