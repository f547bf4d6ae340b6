"""Ten minutes in the demo compound as records, alerts from the default rule pack, and the
line protocol the store sink writes for them.

The scenarios of simulators/scenarios.py on the devices of simulators/site.py, with fixed
timestamps: elder SOS (one acknowledged, one cancelled), a confirmed fire in building 3,
a lifted manhole cover, fever readings at the east gate, a smoke detector that dies and
comes back, and a door controller that dies for good.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway.core.config import Location
from gateway.core.kinds import make_event
from gateway.core.model import AckCommand, Alert, DeviceEvent, DeviceKind, Reading, Record, new_id
from gateway.ops.private_servers import InfluxDB1
from gateway.sinks.points import PointMaker
from rules.directory import DeviceInfo
from rules.engine import RuleEngine
from rules.loader import PACKS, load_pack

SITE = "demo"
T0 = 1_772_352_000_000  # 2026-03-01T08:00:00Z
END = T0 + 600_000

DEVICES = {
    "elder-3-1-502": DeviceInfo(DeviceKind.ELDER_BUTTON, Location(building="3", unit="1", floor=5)),
    "elder-5-2-101": DeviceInfo(DeviceKind.ELDER_BUTTON, Location(building="5", unit="2", floor=1)),
    "smoke-3-1": DeviceInfo(DeviceKind.SMOKE, Location(building="3", unit="1", floor=1)),
    "smoke-3-2": DeviceInfo(DeviceKind.SMOKE, Location(building="3", unit="2", floor=4)),
    "door-5-1": DeviceInfo(DeviceKind.ACCESS, Location(building="5", unit="1")),
    "manhole-n1": DeviceInfo(DeviceKind.MANHOLE, Location(building="north-gate")),
    "manhole-s2": DeviceInfo(DeviceKind.MANHOLE, Location(building="south-road")),
    "gate-north": DeviceInfo(DeviceKind.TEMP_GATE, Location(building="north-gate")),
    "gate-east": DeviceInfo(DeviceKind.TEMP_GATE, Location(building="east-gate")),
}


def _event(device: str, type_: str, at_s: float, **fields: float) -> DeviceEvent:
    return make_event(DEVICES[device].kind, device, type_, T0 + int(at_s * 1000), dict(fields))


def _reading(device: str, at_s: float, **values: float) -> Reading:
    ts = T0 + int(at_s * 1000)
    return Reading(id=new_id(ts), ts=ts, kind=DEVICES[device].kind, device=device,
                   values=dict(values))


def _ack(rule: str, device: str, at_s: float) -> AckCommand:
    ts = T0 + int(at_s * 1000)
    return AckCommand(id=new_id(ts), ts=ts, rule=rule, device=device, by="duty-office")


def inputs() -> list[Record]:
    """What the devices and the duty officer did, in time order."""
    records: list[Record] = [
        _event("elder-3-1-502", "press", 0, duration_ms=300),
        _event("elder-5-2-101", "press", 4, duration_ms=300),
        _event("elder-5-2-101", "cancel", 5, duration_ms=3200),
        _event("smoke-3-1", "alarm", 60, battery_pct=92),
        _event("smoke-3-2", "alarm", 80, obscuration_pct_ft=4.2),
        _ack("elder.sos", "elder-3-1-502", 120),
        _event("manhole-s2", "open", 200, tilt_deg=35.0, installed_tilt_deg=1.0),
    ]
    records += [_reading("manhole-s2", 200 + s, tilt_deg=35.0, installed_tilt_deg=1.0)
                for s in range(0, 10, 2)]
    records += [_reading("manhole-n1", 200 + 2 * n, tilt_deg=1.0 + n / 10, water_level_cm=30 + n)
                for n in range(5)]
    records += [_reading("gate-north", 300 + s, body_temp_c=36.5, mask=1) for s in range(0, 10, 2)]
    records += [
        _reading("gate-east", 301, body_temp_c=37.8, abnormal=1),
        _event("gate-east", "fever", 301, body_temp_c=37.8),
        _reading("gate-east", 303, body_temp_c=36.9, abnormal=0),
        _reading("gate-east", 310, body_temp_c=38.4, abnormal=1),
        _event("smoke-3-2", "offline", 400),
        _event("smoke-3-2", "online", 420),
        _event("door-5-1", "offline", 500),
    ]
    return sorted(records, key=lambda r: r.ts)


@dataclass(frozen=True)
class DemoDay:
    records: list[Record]  # inputs and alerts, as journalled
    alerts: list[Alert]
    lines: list[str]


def demo_day() -> DemoDay:
    """The inputs through the default rule pack, and the points the store sink writes."""
    engine = RuleEngine(load_pack(PACKS), DEVICES)
    records: list[Record] = []
    alerts: list[Alert] = []
    for record in inputs():
        if isinstance(record, DeviceEvent):
            fired = engine.on_event(record)
        elif isinstance(record, Reading):
            fired = engine.on_reading(record)
        else:
            assert isinstance(record, AckCommand)
            fired = engine.on_ack(record)
        records += [record, *fired]
        alerts += fired
    fired = engine.on_time(END)
    records += fired
    alerts += fired
    maker = PointMaker(SITE, lambda device: DEVICES[device].location if device in DEVICES
                       else None)
    lines = [line for r in records if (line := maker.line(r)) is not None]
    return DemoDay(records, alerts, lines)


def load(store: InfluxDB1, database: str, lines: list[str]) -> None:
    """Create `database` and write `lines` as the v1 store sink does (precision ms)."""
    store.create_database(database)
    request = urllib.request.Request(
        f"{store.url}/write?db={database}&precision=ms", data="\n".join(lines).encode(),
        method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 204, resp.read()


def rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a one-statement InfluxQL answer, each with its series' tags as columns."""
    (result,) = answer["results"]
    assert "error" not in result, result["error"]
    out = []
    for series in result.get("series", []):
        tags = series.get("tags", {})
        for values in series["values"]:
            out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
    return out


def dumps(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
