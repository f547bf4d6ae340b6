"""One polled device on a bus: its schedule, its backoff, and what its values mean."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.modbus.planner import Block, Plan
from drivers.modbus.register_map import ModbusMap
from gateway.core.backoff import Backoff
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceEvent, DeviceKind, Reading, Scalar, new_id

Value = bool | int | float


@dataclass(frozen=True, slots=True)
class Due:
    """A poll: its blocks, and whether they are all of the device's blocks."""

    blocks: tuple[Block, ...]
    full: bool


@dataclass(slots=True)
class Outcome:
    """What one poll's values amount to."""

    reading: Reading | None = None
    events: list[DeviceEvent] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)


class PolledDevice:
    """Schedule and state of one unit: fast blocks every alarm_poll_s, all every poll_s.

    A device that fails is not polled again until its backoff has passed; then all its
    blocks are read, as its state may have changed meanwhile.
    """

    def __init__(self, *, device_id: str, unit: int, kind: DeviceKind, mapping: ModbusMap,
                 plan: Plan, poll_s: float, alarm_poll_s: float, backoff: Backoff) -> None:
        self.id = device_id
        self.unit = unit
        self.kind = kind
        self.mapping = mapping
        self.plan = plan
        self._poll_s = poll_s
        self._alarm_poll_s = alarm_poll_s
        self._backoff = backoff
        self._specs = MODELS[kind].readings
        self._next_full = 0.0
        self._next_fast = 0.0
        self._retry_at: float | None = None
        self._last: dict[str, Value] = {}  # last value of each point that feeds events

    @property
    def next_due(self) -> float:
        if self._retry_at is not None:
            return self._retry_at
        return min(self._next_full, self._next_fast) if self.plan.fast else self._next_full

    def due(self, now: float) -> Due | None:
        """The poll to make now, if one is due."""
        if self._retry_at is not None:
            return Due(self.plan.full, full=True) if now >= self._retry_at else None
        if now >= self._next_full:
            return Due(self.plan.full, full=True)
        if self.plan.fast and now >= self._next_fast:
            return Due(self.plan.fast, full=False)
        return None

    def answered(self, now: float, due: Due) -> None:
        """Every block of a poll was answered: schedule the next ones."""
        self._backoff.reset()
        self._retry_at = None
        self._next_fast = _next(self._next_fast, self._alarm_poll_s, now)
        if due.full:
            self._next_full = _next(self._next_full, self._poll_s, now)

    def failed(self, now: float) -> float:
        """The device did not answer: back off; returns the delay chosen."""
        delay = self._backoff.next_delay()
        self._retry_at = now + delay
        return delay

    def interpret(self, values: dict[str, Value], ts: int) -> Outcome:
        """Readings (range-checked) and the events of changed flags and enumerations."""
        out = Outcome()
        readings: dict[str, Scalar] = {}
        for name, value in values.items():
            point = self.mapping.points[name]
            if point.reading is None:
                continue
            number = int(value) if isinstance(value, bool) else value
            try:
                readings[point.reading] = self._specs[point.reading].checked(
                    point.reading, number)
            except OutOfRangeError as exc:
                out.problems.append(("out_of_range", f"{exc} (point {name})"))
        for name, value in values.items():
            point = self.mapping.points[name]
            if point.on_set is None and point.on_clear is None and not point.map:
                continue
            previous = self._last.get(name)
            self._last[name] = value
            if previous is not None and previous == value:
                continue
            # the first answer reports a condition that is present (an alarm standing since
            # before the start), not the quiet ones: a restart must not flood "cleared" events
            if previous is None and not point.map and not value:
                continue
            if point.map:
                event = point.events_by_value.get(int(value))
                if event is None:
                    out.problems.append(("unmapped_value", f"point {name} = {value} is not "
                                         "in its map"))
                    continue
            else:
                event = point.on_set if value else point.on_clear
                if event is None:
                    continue
            out.events.append(make_event(self.kind, self.id, event, ts, dict(readings)))
        if readings:
            out.reading = Reading(id=new_id(ts), ts=ts, kind=self.kind, device=self.id,
                                  values=readings)
        return out


def _next(due: float, interval: float, now: float) -> float:
    # keep the rhythm; a slot missed while the bus was busy is skipped, not made up for
    following = due + interval
    return following if following > now else now + interval
