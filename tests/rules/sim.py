"""A rule engine on a simulated clock, and a small compound to run it on."""

from __future__ import annotations

from pathlib import Path

from gateway.core.config import Location
from gateway.core.kinds import make_event
from gateway.core.model import AckCommand, Alert, AlertState, DeviceKind, Reading
from rules.contacts import Contacts
from rules.definition import RulePack
from rules.directory import DeviceInfo
from rules.engine import RuleEngine
from rules.loader import load_pack, pack_from_text
from rules.notify import Notify

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PACK_DIR = Path(__file__).resolve().parents[2] / "rules" / "packs"
SAMPLES = Path(__file__).resolve().parents[2] / "rules" / "samples"


def where(building: str, unit: str | None = None, floor: int | None = None) -> Location:
    return Location(building=building, unit=unit, floor=floor)


DIRECTORY = {
    "smoke-3-1": DeviceInfo(DeviceKind.SMOKE, where("3", "1", 1)),
    "smoke-3-2": DeviceInfo(DeviceKind.SMOKE, where("3", "2", 4)),
    "smoke-3-3": DeviceInfo(DeviceKind.SMOKE, where("3", "2", 6)),
    "smoke-5-1": DeviceInfo(DeviceKind.SMOKE, where("5", "1", 1)),
    "smoke-x": DeviceInfo(DeviceKind.SMOKE),  # not placed anywhere
    "elder-1": DeviceInfo(DeviceKind.ELDER_BUTTON, where("3", "1", 5)),
    "elder-2": DeviceInfo(DeviceKind.ELDER_BUTTON, where("5", "2", 1)),
    "manhole-1": DeviceInfo(DeviceKind.MANHOLE, where("north")),
    "gate-1": DeviceInfo(DeviceKind.TEMP_GATE, where("east")),
    "door-1": DeviceInfo(DeviceKind.ACCESS, where("3", "1", 1)),
}

CONTACTS = Contacts(
    groups={"duty_office": ("mqtt://sc/t/duty",), "clinic": ("mqtt://sc/t/clinic",),
            "property_manager": ("mailto://pm@example.org",),
            "fire_warden": ("mqtt://sc/t/warden",), "maintenance": ("mqtt://sc/t/maint",)},
    devices={"elder-1": {"family": ("tgram://token/elder-1-family",)}},
)


def kind_of(device: str) -> DeviceKind:
    return DIRECTORY[device].kind


def ms(seconds: float) -> int:
    return T0 + round(seconds * 1000)


class Sim:
    """Feeds an engine the way the runner will: records in order, on_time at each deadline."""

    def __init__(self, rules: str | RulePack, *, directory: dict[str, DeviceInfo] | None = None,
                 contacts: Contacts = CONTACTS) -> None:
        pack = rules if isinstance(rules, RulePack) else pack_from_text(rules)
        self.engine = RuleEngine(pack, DIRECTORY if directory is None else directory, contacts)
        self.now = T0
        self.alerts: list[Alert] = []
        self.notes: list[Notify] = []
        self._serial = 0

    # -- input --------------------------------------------------------------------------

    def event(self, device: str, type_: str, at: float, **fields: float | str) -> list[Alert]:
        event = make_event(kind_of(device), device, type_, ms(at), dict(fields) or None)
        self.until(at)
        return self._take(self.engine.on_event(event))

    def reading(self, device: str, at: float, **values: float) -> list[Alert]:
        self._serial += 1
        reading = Reading(id=f"r{self._serial}", ts=ms(at), kind=kind_of(device), device=device,
                          values=dict(values))
        self.until(at)
        return self._take(self.engine.on_reading(reading))

    def ack(self, rule: str, key: str, at: float, by: str = "duty",
            reason: str | None = None) -> list[Alert]:
        self._serial += 1
        self.until(at)
        return self._take(self.engine.on_ack(AckCommand(id=f"a{self._serial}", ts=ms(at),
                                                        rule=rule, device=key, by=by,
                                                        reason=reason)))

    def until(self, at: float) -> list[Alert]:
        """Let simulated time pass to `at` seconds, calling on_time at every deadline."""
        target = ms(at)
        out: list[Alert] = []
        while (due := self.engine.next_deadline()) is not None and due <= target:
            out += self._take(self.engine.on_time(due))
        out += self._take(self.engine.on_time(target))
        self.now = max(self.now, target)
        return out

    def _take(self, alerts: list[Alert]) -> list[Alert]:
        self.alerts += alerts
        self.notes += self.engine.take_notifications()
        return alerts

    # -- looking ------------------------------------------------------------------------

    def states(self, rule: str | None = None) -> list[tuple[str, str, AlertState, int]]:
        """(rule, key, state, seconds after T0) of every transition so far."""
        return [(a.rule, a.device, a.state, (a.ts - T0) // 1000) for a in self.alerts
                if rule is None or a.rule == rule]

    def steps(self) -> list[tuple[str, str, int, int, int]]:
        """(key, group, step, round, seconds after T0) of every notification so far."""
        return [(n.device, n.group, n.step, n.round, (n.ts - T0) // 1000) for n in self.notes]


def default_pack() -> RulePack:
    return load_pack(PACK_DIR)


FIRING, ACKED, RESOLVED = AlertState.FIRING, AlertState.ACKNOWLEDGED, AlertState.RESOLVED
