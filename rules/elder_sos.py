"""The elder SOS rule: a button press raises a critical alert; ack and cancel move it on."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from gateway.model import (
    AckCommand,
    Alert,
    AlertState,
    DeviceEvent,
    DeviceKind,
    Severity,
    new_id,
)

log = logging.getLogger(__name__)

RULE = "elder.sos"
PRESSES = frozenset({"press", "long_press"})
CANCEL = "cancel"


class ElderSos:
    """One active alert per button; a second press while it is open is suppressed."""

    def __init__(self, describe: Callable[[str], str]) -> None:
        self._describe = describe  # device id -> where it is, for the message
        self._active: dict[str, Alert] = {}
        self.suppressed = 0

    def on_event(self, event: DeviceEvent) -> list[Alert]:
        if event.kind is not DeviceKind.ELDER_BUTTON:
            return []
        current = self._active.get(event.device)
        if event.type in PRESSES:
            if current is not None:
                self.suppressed += 1
                return []
            alert = Alert(
                id=new_id(event.ts),
                ts=event.ts,
                rule=RULE,
                device=event.device,
                kind=event.kind,
                state=AlertState.FIRING,
                severity=Severity.CRITICAL,
                since=event.ts,
                value=1,
                message=f"Elder SOS: {self._describe(event.device)}",
                cause=event.id,
            )
            self._active[event.device] = alert
            return [alert]
        if event.type == CANCEL and current is not None:
            del self._active[event.device]
            return [
                msgspec.structs.replace(
                    current,
                    ts=max(event.ts, current.ts),
                    state=AlertState.RESOLVED,
                    value=0,
                    message=f"Elder SOS cancelled at the button: {self._describe(event.device)}",
                    cause=event.id,
                )
            ]
        return []

    def on_ack(self, ack: AckCommand) -> list[Alert]:
        current = self._active.get(ack.device)
        if ack.rule != RULE or current is None or current.state is not AlertState.FIRING:
            return []
        acked = msgspec.structs.replace(
            current,
            ts=max(ack.ts, current.ts),
            state=AlertState.ACKNOWLEDGED,
            by=ack.by,
            message=f"Elder SOS acknowledged by {ack.by}: {self._describe(ack.device)}",
            cause=ack.id,
        )
        self._active[ack.device] = acked
        return [acked]

    def active(self) -> list[Alert]:
        return list(self._active.values())

    def snapshot(self) -> bytes:
        return msgspec.json.encode(list(self._active.values()))

    def restore(self, data: bytes) -> None:
        alerts = msgspec.json.decode(data, type=list[Alert])
        self._active = {a.device: a for a in alerts}
