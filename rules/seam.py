"""What the gateway needs from a rule set; the full engine implements the same protocol."""

from __future__ import annotations

from typing import Protocol

from gateway.model import AckCommand, Alert, DeviceEvent


class RuleSet(Protocol):
    """Pure functions of the records they are given: no clock, no I/O.

    The runner feeds records in journal order and persists `snapshot()` in the same
    transaction as the transitions, so a restart resumes exactly where it stopped.
    """

    def on_event(self, event: DeviceEvent) -> list[Alert]: ...

    def on_ack(self, ack: AckCommand) -> list[Alert]: ...

    def active(self) -> list[Alert]:
        """The current state of every alert that is not resolved."""
        ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...
