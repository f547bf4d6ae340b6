"""The engine's state: plain structs, so a snapshot is their JSON and nothing else."""

from __future__ import annotations

import enum

import msgspec

from gateway.core.model import Alert, DeviceKind, Scalar
from rules.notify import Notify

STATE_VERSION = 1


class Phase(enum.StrEnum):
    IDLE = "idle"
    PENDING = "pending"  # met, waiting for `for` or for the flapping damper
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"


class Hit(msgspec.Struct, array_like=True):
    """A record that met a counting rule."""

    ts: int
    device: str


class Sample(msgspec.Struct, array_like=True):
    """The previous value of a field, for its rate of change."""

    ts: int
    value: float


class Slot(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Everything one rule knows about one key (a device, or a place such as building-3).

    Saved as a row of its own whenever it changes: defaults are left out of its JSON."""

    phase: Phase = Phase.IDLE
    deadline: int | None = None  # PENDING: when it may fire
    cause: str | None = None  # the record that made it pending
    alert: Alert | None = None  # FIRING / ACKNOWLEDGED: the alert as last transitioned
    # devices that meet the rule now; the alert resolves when the last one clears
    members: dict[str, Scalar | None] = msgspec.field(default_factory=dict)
    device: str | None = None  # the device whose record last moved this slot
    kind: DeviceKind | None = None
    value: Scalar | None = None
    hits: list[Hit] = msgspec.field(default_factory=list)
    streak: dict[str, int] = msgspec.field(default_factory=dict)
    samples: dict[str, Sample] = msgspec.field(default_factory=dict)
    last_met: int | None = None  # for a quiet-time clear
    last_fire: int | None = None  # for the flapping damper
    last_seen: int | None = None  # absence rules
    # escalation: the next step to emit; steps before it were emitted
    escalating: bool = False
    step: int = 0
    round: int = 0
    notified: list[str] = msgspec.field(default_factory=list)


class RuleState(msgspec.Struct, kw_only=True):
    """One rule's slots, and the definition they were built under."""

    fingerprint: str
    key: str = "device"  # what the slots are keyed by, to judge a changed rule on restore
    slots: dict[str, Slot] = msgspec.field(default_factory=dict)


class EngineState(msgspec.Struct, kw_only=True):
    """Everything `RuleEngine.snapshot()` saves."""

    v: int = STATE_VERSION
    now: int | None = None  # the latest time the engine has seen
    fires: int = 0  # alerts fired so far: part of each alert's id
    rules: dict[str, RuleState] = msgspec.field(default_factory=dict)
    # produced but not yet handed over: kept here so a snapshot cannot lose them
    outbox: list[Notify] = msgspec.field(default_factory=list)
    owed: list[Alert] = msgspec.field(default_factory=list)
    counters: dict[str, int] = msgspec.field(default_factory=dict)
