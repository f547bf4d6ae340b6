"""What the gateway needs from a rule set; the full engine implements the same protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway.core.model import AckCommand, Alert, DeviceEvent, Reading
from rules.notify import Notify
from rules.state_rows import Changes


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


class TimedRuleSet(RuleSet, Protocol):
    """A rule set that also reads telemetry, keeps timers and asks for notifications.

    Time only moves through the records' `ts` and `on_time`: call `on_time(now_ms)` once the
    journal is caught up and again at `next_deadline()`. Take the notification intents
    with `take_notifications()` after each batch, and journal them together with the
    transitions, the cursor and the durable `state_changes()`.
    """

    def on_reading(self, reading: Reading) -> list[Alert]: ...

    def on_time(self, now_ms: int) -> list[Alert]: ...

    def next_deadline(self) -> int | None:
        """Epoch ms of the next timer, or None when nothing is waiting."""
        ...

    def take_notifications(self) -> list[Notify]: ...

    def state_changes(self) -> Changes:
        """The state rows changed since the last call, durable and lazy."""
        ...

    def restore_rows(self, rows: Mapping[str, bytes]) -> None:
        """Resume from the rows saved from `state_changes()`; without any, start afresh."""
        ...
