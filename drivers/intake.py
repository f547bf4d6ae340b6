"""Where drivers hand over what they parsed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent, Reading


class Intake(Protocol):
    async def event(self, event: DeviceEvent) -> None:
        """Return once the event is durable: from then on it counts as received."""
        ...

    def seen(self, device: str) -> None:
        """A well-formed message arrived from `device`: it is alive."""
        ...

    def reading(self, reading: Reading) -> None:
        """Queue telemetry; it may be dropped under pressure, with a counter.

        It does not mark the device seen: the driver calls `seen` once for the message.
        """
        ...


@runtime_checkable
class MessageIntake(Intake, Protocol):
    def unreachable(self, device: str) -> None:
        """A bridge (zigbee2mqtt) says it lost `device`: offline now, without waiting for
        the heartbeat to lapse."""
        ...

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        """Journal the events of one message in one commit, with the message's receipt.

        Raises NotJournalledError when they were not received: the sender must give the
        message again.
        """
        ...
