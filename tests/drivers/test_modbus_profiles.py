"""Every shipped Modbus profile, simulated from its own data, over a pty RTU line and over
Modbus TCP: the typed readings and events the gateway gets from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.profile import ProfileLibrary
from gateway.core.model import DeliveryClass, Scalar
from simulators.modbus_device import SimulatedDevice
from tests.drivers.test_modbus_bus import Transport, on_line, profile


@dataclass(frozen=True)
class Case:
    values: dict[str, float | bool]  # point -> engineering value set before the first poll
    reading: dict[str, Scalar]  # the first full poll's reading
    first_events: set[str]  # the conditions present at the first answer
    alarm_point: str  # raised between polls, seen by the fast poll
    alarm: str
    alarm_fields: dict[str, Scalar] = field(default_factory=dict)
    also: dict[str, float] = field(default_factory=dict)  # set along with the alarm


CASES = {
    "modbus-smoke-detector": Case(
        values={"obscuration": 2.5, "temperature": 24.5, "battery": 87, "low_battery": True},
        reading={"smoke": 0, "obscuration_pct_ft": 2.5, "temperature_c": 24.5,
                 "battery_pct": 87},
        first_events={"low_battery"},  # present conditions only, no "cleared" flood
        alarm_point="alarm", alarm="alarm", alarm_fields={"smoke": 1}),
    "modbus-manhole-monitor": Case(
        values={"tilt": 3.5, "installed_tilt": 1.2, "water_level": 40, "gas": 70_103,
                "battery": 81, "water_high": True},
        reading={"tilt_deg": 3.5, "installed_tilt_deg": 1.2, "water_level_cm": 40,
                 "gas_ppm": 70_103, "battery_pct": 81, "open": 0},
        first_events={"water_high"},
        alarm_point="open", alarm="open", alarm_fields={"open": 1}),
    "modbus-door-io": Case(
        values={},
        reading={"door_open": 0},
        first_events=set(),
        alarm_point="forced_open", alarm="forced_open", alarm_fields={"door_open": 0}),
    "modbus-temp-gate": Case(
        values={"body_temperature": 36.6, "passages": 123_456, "mask": True},
        reading={"body_temp_c": 36.6, "passage_count": 123_456, "abnormal": 0, "mask": 1},
        first_events=set(),
        alarm_point="abnormal", alarm="fever",
        alarm_fields={"body_temp_c": 38.9, "abnormal": 1, "mask": 1},
        also={"body_temperature": 38.9}),
}


def test_every_modbus_profile_has_a_case() -> None:
    library = ProfileLibrary()
    assert {n for n in library.names() if library.get(n).transport == "modbus"} == set(CASES)


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_profile_decodes_to_typed_records(name: str, transport: Transport) -> None:
    case = CASES[name]
    async with on_line(transport, [profile(name)], poll_s=30, alarm_poll_s=1) as line:
        device: SimulatedDevice = line.units[1]
        for point, value in case.values.items():
            device.set_value(point, value)
        await line.polled(1)
        readings, events = line.intake.of("u1")
        assert [r.values for r in readings] == [case.reading]
        assert readings[0].kind == profile(name).kind
        assert {e.type for e in events} == case.first_events
        assert all(e.cls is DeliveryClass.EVENT for e in events)

        for point, value in case.also.items():
            device.set_value(point, value)
        device.raise_alarm(case.alarm_point)
        line.clock.advance(1)
        await line.polled(2)
        readings, events = line.intake.of("u1")
        alarm = events[-1]
        assert (alarm.type, alarm.cls, alarm.ts) == (case.alarm, DeliveryClass.ALARM,
                                                     line.clock.now_ms())
        assert alarm.fields == case.alarm_fields
        assert len(events) == len(case.first_events) + 1
        assert line.counters.get("rejected") == 0


ENUM_PROFILE = """
name = "modbus-door-controller"
kind = "access"
transport = "modbus"
vendor = "test"
[modbus]
[modbus.points.door_state]
function = "holding_registers"
address = 100
fast = true
map = { "0" = "door_closed", "1" = "door_opened", "2" = "forced_open", "3" = "held_open" }
[modbus.points.door_contact]
function = "holding_registers"
address = 101
datatype = "bool"
reading = "door_open"
"""


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
async def test_an_enumeration_turns_each_change_into_its_event(
        tmp_path: Path, transport: Transport) -> None:
    (tmp_path / "modbus-door-controller.toml").write_text(ENUM_PROFILE, encoding="utf-8")
    controller = ProfileLibrary([tmp_path]).get("modbus-door-controller")
    async with on_line(transport, [controller], poll_s=1) as line:
        device = line.units[1]
        await line.polled(1)
        for state in ("forced_open", "forced_open", "held_open", "door_closed"):
            device.set_state("door_state", state)
            await line.cycle()
        device.set_raw("door_state", 7)  # a value the map does not know
        await line.cycle()
        _, events = line.intake.of("u1")
        assert [(e.type, e.cls) for e in events] == [
            ("door_closed", DeliveryClass.EVENT), ("forced_open", DeliveryClass.ALARM),
            ("held_open", DeliveryClass.EVENT), ("door_closed", DeliveryClass.EVENT)]
        assert line.counters.get("rejected", device="u1", reason="unmapped_value") == 1
