"""What a kind's model is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.core.model import DataClass, DeviceKind


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingSpec:
    """One telemetry quantity; values outside [low, high] are rejected as out of range."""

    unit: str
    low: float | None = None
    high: float | None = None
    integer: bool = False

    def accepts(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def checked(self, name: str, value: float) -> int | float:
        """`value` as the model keeps it (rounded); OutOfRangeError outside the range."""
        if not self.accepts(value):
            raise OutOfRangeError(f"{name}={value:g} {self.unit} outside "
                                  f"[{self.low}, {self.high}]")
        return round(value) if self.integer else round(value, 6)


class OutOfRangeError(ValueError):
    """A reading outside the range its kind's model allows."""


FLAG = ReadingSpec(unit="bool", low=0, high=1, integer=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class KindModel:
    kind: DeviceKind
    events: frozenset[str]
    alarms: frozenset[str]
    readings: Mapping[str, ReadingSpec]
    # under overload, one reading a second per device is enough (a room's temperature, a
    # tilt, a battery); not where each reading is a person passing (a gate)
    coalescible: bool = True
    # personal data in this kind's records, by field (an event's field, a reading, or
    # `device` where one device stands for one person)
    privacy: Mapping[str, DataClass] = field(default_factory=dict)
    # event types that are personal data themselves (an SOS press is a health matter):
    # such an event's `type` counts as that class
    sensitive_events: Mapping[str, DataClass] = field(default_factory=dict)
    # alerts on this kind's devices tell of such events: their rule and state count as this
    alert_class: DataClass | None = None

    def __post_init__(self) -> None:
        if not self.alarms <= self.events:
            raise ValueError(f"{self.kind}: alarms {set(self.alarms - self.events)} not events")
        if not set(self.sensitive_events) <= self.events:
            raise ValueError(f"{self.kind}: sensitive events "
                             f"{set(self.sensitive_events) - self.events} not events")


# events every kind can report
COMMON_EVENTS = frozenset({"fault", "fault_cleared", "tamper", "tamper_cleared", "low_battery",
                           "battery_ok", "heartbeat", "offline", "online"})
