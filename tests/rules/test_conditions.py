"""Every kind of condition, on a simulated clock."""

from __future__ import annotations

from gateway.core.model import DeviceKind, Reading
from tests.rules.sim import ACKED, FIRING, RESOLVED, Sim, ms

TILT = """
rules:
  - id: tilt
    match: {kind: manhole, type: reading}
    condition: {field: tilt_deg, above: 10}
    for: 3s
    clear: {field: tilt_deg, below: 5}
    message: "{device} tilted {value}"
"""


def test_for_fires_only_when_the_condition_holds_throughout() -> None:
    sim = Sim(TILT)
    sim.reading("manhole-1", 0, tilt_deg=12)
    sim.reading("manhole-1", 2, tilt_deg=9)  # dips before 3 s: the wait starts over
    sim.reading("manhole-1", 4, tilt_deg=13)
    assert sim.until(6.9) == []
    (fired,) = sim.until(7)
    assert (fired.state, fired.ts, fired.since, fired.value) == (FIRING, fired.since,
                                                                 sim.now, 13)
    assert fired.message == "manhole-1 tilted 13"
    assert fired.cause is not None


def _reading(device: str, at: float, **values: float) -> Reading:
    return Reading(id="late", ts=ms(at), kind=DeviceKind.MANHOLE, device=device,
                   values=dict(values))


def test_late_record_still_sees_the_timer_fire_first() -> None:
    sim = Sim(TILT)
    sim.reading("manhole-1", 0, tilt_deg=12)
    # no on_time in between: the timer still runs out at 3 s, before the reading at 10 s
    out = sim.engine.on_reading(_reading("manhole-1", 10, tilt_deg=2))
    assert [(a.state, (a.ts - out[0].since)) for a in out] == [(FIRING, 0), (RESOLVED, 7000)]


def test_hysteresis_keeps_firing_between_the_thresholds() -> None:
    sim = Sim(TILT)
    sim.reading("manhole-1", 0, tilt_deg=20)
    sim.until(3)
    sim.reading("manhole-1", 4, tilt_deg=8)
    sim.reading("manhole-1", 5, tilt_deg=5)  # "below 5" is strict
    assert sim.states() == [("tilt", "manhole-1", FIRING, 3)]
    sim.reading("manhole-1", 6, tilt_deg=4.9)
    assert sim.states()[-1] == ("tilt", "manhole-1", RESOLVED, 6)
    assert sim.alerts[-1].value == 4.9


def test_readings_without_the_field_are_not_about_the_rule() -> None:
    sim = Sim(TILT)
    sim.reading("manhole-1", 0, tilt_deg=20)
    sim.reading("manhole-1", 1, water_level_cm=40)  # says nothing about tilt
    sim.until(3)
    assert sim.states() == [("tilt", "manhole-1", FIRING, 3)]


def test_range_condition_fires_outside_and_clears_inside() -> None:
    sim = Sim("""
rules:
  - id: water
    match: {kind: manhole, type: reading}
    condition: {field: water_level_cm, outside: [10, 80]}
    message: "water {value} cm"
""")
    sim.reading("manhole-1", 0, water_level_cm=50)
    sim.reading("manhole-1", 1, water_level_cm=85)
    sim.reading("manhole-1", 2, water_level_cm=80)
    sim.reading("manhole-1", 3, water_level_cm=5)
    assert sim.states() == [("water", "manhole-1", FIRING, 1), ("water", "manhole-1", RESOLVED, 2),
                            ("water", "manhole-1", FIRING, 3)]


def test_expression_condition_over_several_fields() -> None:
    sim = Sim("""
rules:
  - id: relative_tilt
    match: {kind: manhole, type: reading}
    condition: "abs(tilt_deg - installed_tilt_deg) > 10 and not (open == 1)"
    message: "{device} off by {value}"
""")
    sim.reading("manhole-1", 0, tilt_deg=25, installed_tilt_deg=20, open=0)
    sim.reading("manhole-1", 1, tilt_deg=35, installed_tilt_deg=20, open=0)
    assert sim.states() == [("relative_tilt", "manhole-1", FIRING, 1)]
    assert sim.alerts[0].value == 35  # the first number the expression reads
    sim.reading("manhole-1", 2, tilt_deg=35, installed_tilt_deg=20, open=1)
    assert sim.states()[-1] == ("relative_tilt", "manhole-1", RESOLVED, 2)


def test_expression_on_event_fields() -> None:
    sim = Sim("""
rules:
  - id: long_hold
    match: {kind: elder_button, type: long_press}
    condition: "duration_ms >= 3000"
    clear: {type: cancel}
    message: "held {value} ms"
""")
    sim.event("elder-1", "long_press", 0, duration_ms=1000)
    assert sim.alerts == []
    sim.event("elder-1", "long_press", 1, duration_ms=4000)
    assert sim.alerts[-1].message == "held 4000 ms"


def test_a_value_of_the_wrong_type_is_counted_not_raised() -> None:
    sim = Sim(TILT)
    sim.reading("manhole-1", 0, tilt_deg="steep")  # type: ignore[arg-type]
    assert sim.alerts == []
    assert sim.engine.counters["expression_errors"] == 1


def test_count_within_a_window_per_building() -> None:
    sim = Sim("""
rules:
  - id: fire
    match: {kind: smoke, type: alarm}
    count: {at_least: 2, within: 60s, distinct: true}
    key: building
    clear: {type: alarm_cleared}
    severity: critical
    message: "fire in {building}: {count} ({devices})"
""")
    sim.event("smoke-3-1", "alarm", 0)
    sim.event("smoke-3-1", "alarm", 10)  # the same sensor again is not a second one
    sim.event("smoke-5-1", "alarm", 20)  # another building
    assert sim.alerts == []
    sim.event("smoke-3-2", "alarm", 61)  # smoke-3-1's hit at 0 s is out of the window
    assert sim.alerts[-1].state is FIRING
    assert sim.alerts[-1].device == "building-3"
    assert sim.alerts[-1].message == "fire in 3: 2 (smoke-3-1, smoke-3-2)"
    sim.event("smoke-3-3", "alarm", 62)  # a third: a duplicate of the open alert
    assert len(sim.alerts) == 1
    assert sim.engine.suppressed == 1
    for device in ("smoke-3-1", "smoke-3-2"):
        sim.event(device, "alarm_cleared", 70)
    assert sim.states()[-1][2] is FIRING  # smoke-3-3 still in alarm
    sim.event("smoke-3-3", "alarm_cleared", 80)
    assert sim.states()[-1] == ("fire", "building-3", RESOLVED, 80)


def test_count_outside_the_window_does_not_fire() -> None:
    sim = Sim("""
rules:
  - id: fire
    match: {kind: smoke, type: alarm}
    count: {at_least: 2, within: 60s, distinct: true}
    key: building
    clear: {type: alarm_cleared}
    message: "fire"
""")
    sim.event("smoke-3-1", "alarm", 0)
    sim.event("smoke-3-2", "alarm", 60.001)
    assert sim.alerts == []


def test_location_key_skips_devices_without_that_place() -> None:
    sim = Sim("""
rules:
  - id: per_floor
    match: {kind: smoke, type: alarm}
    key: floor
    clear: {type: alarm_cleared}
    message: "{key}"
""")
    sim.event("smoke-x", "alarm", 0)
    sim.event("smoke-3-2", "alarm", 1)
    assert [a.device for a in sim.alerts] == ["building-3-floor-4"]
    assert sim.engine.counters["unlocated"] == 1


def test_match_by_place_and_device_glob() -> None:
    sim = Sim("""
rules:
  - id: b3
    match: {kind: smoke, type: alarm, building: "3", floor: [1, 6], devices: ["smoke-3-*"]}
    clear: {type: alarm_cleared}
    message: "{device}"
""")
    for device in ("smoke-3-1", "smoke-3-2", "smoke-3-3", "smoke-5-1", "smoke-x"):
        sim.event(device, "alarm", 0)
    assert sorted(a.device for a in sim.alerts) == ["smoke-3-1", "smoke-3-3"]


def test_absence_fires_on_silence_and_clears_on_the_next_record() -> None:
    sim = Sim("""
rules:
  - id: silent
    match: {kind: temp_gate, type: reading}
    absence: 10m
    message: "{device} silent for {value} s"
""")
    sim.until(0)  # the engine learns the time: every gate is watched from now
    sim.reading("gate-1", 60, body_temp_c=36.5)
    assert sim.until(659) == []
    (fired,) = sim.until(660)
    assert (fired.state, fired.message) == (FIRING, "gate-1 silent for 600 s")
    sim.reading("gate-1", 700, body_temp_c=36.6)
    assert sim.states()[-1] == ("silent", "gate-1", RESOLVED, 700)
    assert sim.until(1299) == []
    assert sim.until(1300)[0].state is FIRING


def test_absence_watches_a_device_that_never_reported() -> None:
    sim = Sim("""
rules:
  - id: silent
    match: {kind: access, type: any}
    absence: 5m
    message: "{device} silent for {value} s"
""")
    sim.until(10)  # the first moment the engine knows the time
    assert sim.engine.next_deadline() == ms(310)
    assert sim.until(309.999) == []
    (fired,) = sim.until(310)
    assert (fired.device, fired.message) == ("door-1", "door-1 silent for 300 s")
    sim.event("door-1", "granted", 320)  # any record from it counts
    assert sim.states()[-1] == ("silent", "door-1", RESOLVED, 320)


def test_rate_of_change_per_minute() -> None:
    sim = Sim("""
rules:
  - id: heat
    match: {kind: smoke, type: reading}
    condition: {rate: temperature_c, per: 1m, above: 8}
    clear: {rate: temperature_c, per: 1m, below: 1}
    message: "{device} +{value} °C/min"
""")
    sim.reading("smoke-3-1", 0, temperature_c=20)
    sim.reading("smoke-3-1", 30, temperature_c=23)  # 6 °C/min
    assert sim.alerts == []
    sim.reading("smoke-3-1", 60, temperature_c=28)  # 10 °C/min
    assert sim.alerts[-1].message == "smoke-3-1 +10.0 °C/min"
    sim.reading("smoke-3-1", 90, temperature_c=30)  # 4 °C/min: between the thresholds
    assert len(sim.alerts) == 1
    sim.reading("smoke-3-1", 150, temperature_c=30.5)  # 0.5 °C/min
    assert sim.states()[-1] == ("heat", "smoke-3-1", RESOLVED, 150)


def test_rate_is_per_device_even_when_keyed_by_building() -> None:
    sim = Sim("""
rules:
  - id: heat
    match: {kind: smoke, type: reading}
    condition: {rate: temperature_c, per: 1m, above: 8}
    key: building
    message: "{devices}"
""")
    sim.reading("smoke-3-1", 0, temperature_c=20)
    sim.reading("smoke-3-2", 30, temperature_c=40)  # not a rise: a different sensor
    assert sim.alerts == []
    sim.reading("smoke-3-2", 60, temperature_c=50)
    assert [a.device for a in sim.alerts] == ["building-3"]


def test_consecutive_readings_or_one_very_high() -> None:
    sim = Sim("""
rules:
  - id: fever
    match: {kind: temp_gate, type: reading}
    condition: {field: body_temp_c, at_least: 37.3}
    consecutive: 2
    at_once: {field: body_temp_c, at_least: 38.0}
    clear: {after: 10m}
    message: "{value}"
""")
    sim.reading("gate-1", 0, body_temp_c=37.4)
    sim.reading("gate-1", 1, body_temp_c=36.9)
    sim.reading("gate-1", 2, body_temp_c=37.3)
    assert sim.alerts == []
    sim.reading("gate-1", 3, body_temp_c=37.3)
    assert sim.states() == [("fever", "gate-1", FIRING, 3)]
    sim.until(603)
    assert sim.states()[-1] == ("fever", "gate-1", RESOLVED, 603)
    sim.reading("gate-1", 700, body_temp_c=38.0)
    assert sim.states()[-1] == ("fever", "gate-1", FIRING, 700)


def test_event_for_with_clear_event() -> None:
    sim = Sim("""
rules:
  - id: held
    match: {kind: access, type: door_opened}
    for: 120s
    clear: {type: door_closed}
    message: "held"
""")
    sim.event("door-1", "door_opened", 0)
    sim.event("door-1", "door_closed", 119)
    sim.event("door-1", "door_opened", 200)
    sim.until(400)
    sim.ack("held", "door-1", 401)
    sim.event("door-1", "door_closed", 402)
    assert sim.states() == [("held", "door-1", FIRING, 320), ("held", "door-1", ACKED, 401),
                            ("held", "door-1", RESOLVED, 402)]


def test_a_place_alert_names_the_place_not_one_device_floor() -> None:
    sim = Sim("""
rules:
  - id: building_smoke
    match: {kind: smoke, type: alarm}
    key: building
    clear: {type: alarm_cleared}
    message: "smoke in {location} (first {device}, building {building}, floor {floor})"
""")
    (alert,) = sim.event("smoke-3-2", "alarm", 0)
    assert alert.message == "smoke in building 3 (first smoke-3-2, building 3, floor -)"
    assert sim.event("smoke-3-1", "alarm", 1) == []
    sim.event("smoke-3-2", "alarm_cleared", 2)
    assert [a.state for a in sim.event("smoke-3-1", "alarm_cleared", 3)] == [RESOLVED]
