"""Every InfluxQL query of the dashboard and its alert rules, run on real InfluxDB 1.x.

Each test loads the line protocol of a demo-compound morning (tests/grafana/demo_day.py)
into a database of its own and runs a query as Grafana would send it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.model import AlertState
from gateway.ops.grafana.queries import (
    ACTIVE_ALARMS,
    ALARM_COUNTS,
    ALARM_STATES,
    BUILDINGS,
    CRITICAL_UNACKNOWLEDGED,
    DEVICES_OFFLINE,
    FEVER_C,
    FEVER_READINGS,
    MANHOLE_TILT,
    OFFLINE_DEVICES,
    QUERIES,
    TILT_ALARM_DEG,
    InfluxQuery,
    render,
)
from gateway.ops.private_servers import InfluxDB1
from rules.loader import PACKS
from tests.grafana.demo_day import END, T0, DemoDay, demo_day, load, rows

# the queries the tests below run; a new query needs a test before it joins QUERIES
TESTED = {"active_alarms", "alarm_states", "alarm_counts", "devices_offline", "fever_readings",
          "manhole_tilt", "buildings", "critical_unacknowledged", "offline_devices"}


@pytest.fixture(scope="module")
def day() -> DemoDay:
    return demo_day()


@pytest.fixture
def db(influxdb1: InfluxDB1, day: DemoDay, request: pytest.FixtureRequest) -> str:
    name = "q_" + re.sub(r"\W", "_", request.node.name)
    load(influxdb1, name, day.lines)
    return name


def run(store: InfluxDB1, db: str, query: InfluxQuery, *, start: int = T0 - 60_000,
        end: int = END + 60_000, interval: str = "10s", building: str = ".*"
        ) -> list[dict[str, Any]]:
    text = render(query.text, start_ms=start, end_ms=end, interval=interval, building=building)
    return rows(store.query(text, db))


def test_every_query_has_a_test() -> None:
    assert set(QUERIES) == TESTED


def test_render_fills_grafana_macros_and_refuses_unknown_ones() -> None:
    assert render("SELECT x FROM m WHERE $timeFilter GROUP BY time($__interval)",
                  start_ms=1, end_ms=2, interval="5s") == (
        "SELECT x FROM m WHERE time >= 1ms and time <= 2ms GROUP BY time(5s)")
    assert render('WHERE "building" =~ /^$building$/', start_ms=1, end_ms=2,
                  building="(3|5)") == 'WHERE "building" =~ /^(3|5)$/'
    with pytest.raises(ValueError, match=r"\$site"):
        render('WHERE "site" = $site', start_ms=1, end_ms=2)


def test_thresholds_are_those_of_the_default_rules() -> None:
    def condition(pack: str, rule: str) -> dict[str, Any]:
        rules = yaml.safe_load(Path(PACKS, pack).read_text())["rules"]
        return next(r["condition"] for r in rules if r["id"] == rule)

    assert condition("temp_gate.yaml", "temp_gate.fever") == {"field": "body_temp_c",
                                                              "at_least": FEVER_C}
    assert condition("manhole.yaml", "manhole.tilt") == {"field": "tilt_deg",
                                                         "above": TILT_ALARM_DEG}


def _open_alerts(day: DemoDay) -> dict[str, Any]:
    latest = {}
    for alert in day.alerts:
        latest[alert.id] = alert
    return {a.id: a for a in latest.values() if a.state is not AlertState.RESOLVED}


def test_active_alarms_are_firing_and_acknowledged_alerts_not_resolved_ones(
        influxdb1: InfluxDB1, db: str, day: DemoDay) -> None:
    found = run(influxdb1, db, ACTIVE_ALARMS)
    by_key = {(r["rule"], r["device"]): r for r in found}
    assert len(by_key) == len(found)
    assert set(by_key) == {(a.rule, a.device) for a in _open_alerts(day).values()}
    assert set(by_key) == {
        ("elder.sos", "elder-3-1-502"), ("smoke.alarm", "smoke-3-1"),
        ("smoke.alarm", "smoke-3-2"), ("smoke.fire_confirmed", "building-3"),
        ("manhole.open", "manhole-s2"), ("manhole.tilt", "manhole-s2"),
        ("temp_gate.fever", "gate-east"), ("device.offline", "door-5-1")}
    # cancelled at the button, back online: resolved, so not listed
    assert ("elder.sos", "elder-5-2-101") not in by_key
    assert ("device.offline", "smoke-3-2") not in by_key
    sos = by_key["elder.sos", "elder-3-1-502"]
    assert sos == {"time": T0 + 120_000, "device": "elder-3-1-502", "kind": "elder_button",
                   "building": "3", "unit": "1", "floor": "5", "rule": "elder.sos",
                   "severity": "critical", "since": T0, "state_code": 2}
    fire = by_key["smoke.fire_confirmed", "building-3"]
    assert (fire["state_code"], fire["since"], fire["building"]) == (1, T0 + 80_000, "")


def test_active_alarms_of_one_building(influxdb1: InfluxDB1, db: str) -> None:
    found = run(influxdb1, db, ACTIVE_ALARMS, building="5")
    assert [(r["rule"], r["device"], r["building"]) for r in found] == [
        ("device.offline", "door-5-1", "5")]


def test_alarm_state_timeline_shows_each_alert_moving_through_its_states(
        influxdb1: InfluxDB1, db: str) -> None:
    found = run(influxdb1, db, ALARM_STATES, interval="1s")
    states: dict[tuple[str, str], list[int]] = {}
    first: dict[tuple[str, str], int] = {}
    for r in found:  # in time order per series
        if r["last"] is None:
            continue
        key = r["device"], r["rule"]
        first.setdefault(key, r["time"])
        if not states.get(key) or states[key][-1] != r["last"]:
            states.setdefault(key, []).append(r["last"])
    assert states == {
        ("elder-3-1-502", "elder.sos"): [1, 2],
        ("elder-5-2-101", "elder.sos"): [1, 3],
        ("smoke-3-1", "smoke.alarm"): [1],
        ("smoke-3-2", "smoke.alarm"): [1],
        ("building-3", "smoke.fire_confirmed"): [1],
        ("manhole-s2", "manhole.open"): [1],
        ("manhole-s2", "manhole.tilt"): [1],
        ("gate-east", "temp_gate.fever"): [1],
        ("smoke-3-2", "device.offline"): [1, 3],
        ("door-5-1", "device.offline"): [1],
    }
    assert first["elder-5-2-101", "elder.sos"] == T0 + 4_000
    assert first["door-5-1", "device.offline"] == T0 + 500_000
    # carried forward to the end of the range, as a timeline needs
    assert max(r["time"] for r in found if r["device"] == "door-5-1") == END + 60_000


def test_alarm_counts_by_kind_and_severity(influxdb1: InfluxDB1, db: str, day: DemoDay) -> None:
    counts = {(r["kind"], r["severity"]): r["alarms"] for r in run(influxdb1, db, ALARM_COUNTS)}
    assert counts == {("elder_button", "critical"): 2, ("smoke", "critical"): 3,
                      ("manhole", "major"): 2, ("temp_gate", "major"): 1,
                      ("smoke", "major"): 1, ("access", "major"): 1}
    assert counts == Counter((a.kind.value, a.severity.value) for a in day.alerts
                             if a.state is AlertState.FIRING)
    # the time range counts: the first ten seconds saw the two SOS presses only
    early = run(influxdb1, db, ALARM_COUNTS, start=T0, end=T0 + 10_000)
    assert [(r["kind"], r["severity"], r["alarms"]) for r in early] == [
        ("elder_button", "critical", 2)]


def test_devices_offline_lists_the_dead_door_not_the_revived_detector(
        influxdb1: InfluxDB1, db: str) -> None:
    assert run(influxdb1, db, DEVICES_OFFLINE) == [
        {"time": T0 + 500_000, "device": "door-5-1", "kind": "access", "building": "5",
         "unit": "1", "floor": "", "online": 0}]
    assert run(influxdb1, db, DEVICES_OFFLINE, building="3") == []


def test_fever_readings_at_the_gates_newest_first(influxdb1: InfluxDB1, db: str) -> None:
    found = run(influxdb1, db, FEVER_READINGS)
    assert [(r["time"], r["device"], r["building"], r["body_temp_c"]) for r in found] == [
        (T0 + 310_000, "gate-east", "east-gate", 38.4),
        (T0 + 301_000, "gate-east", "east-gate", 37.8)]
    # 36.5 at the north gate and 36.9 at the east gate are normal
    assert run(influxdb1, db, FEVER_READINGS, building="north-gate") == []


def test_manhole_tilt_per_cover(influxdb1: InfluxDB1, db: str) -> None:
    found = [r for r in run(influxdb1, db, MANHOLE_TILT) if r["max"] is not None]
    tilt: dict[str, list[tuple[int, float]]] = {}
    for r in found:
        tilt.setdefault(r["device"], []).append((r["time"], r["max"]))
    assert tilt == {"manhole-n1": [(T0 + 200_000, 1.4)],
                    "manhole-s2": [(T0 + 200_000, 35.0)]}


def test_building_variable_values(influxdb1: InfluxDB1, db: str) -> None:
    found = run(influxdb1, db, BUILDINGS)
    assert {r["key"] for r in found} == {"building"}
    assert {r["value"] for r in found} == {"3", "5", "east-gate", "north-gate", "south-road"}


def test_critical_unacknowledged_rule_query(influxdb1: InfluxDB1, db: str) -> None:
    found = run(influxdb1, db, CRITICAL_UNACKNOWLEDGED)
    # one series per alert (its rule and key): the SOS was acknowledged, the cancelled one
    # resolved
    assert sorted((r["device"], r["rule"], r["state_code"]) for r in found) == [
        ("building-3", "smoke.fire_confirmed", 1), ("smoke-3-1", "smoke.alarm", 1),
        ("smoke-3-2", "smoke.alarm", 1)]


def test_offline_devices_rule_query(influxdb1: InfluxDB1, db: str) -> None:
    assert [(r["device"], r["kind"], r["online"])
            for r in run(influxdb1, db, OFFLINE_DEVICES)] == [("door-5-1", "access", 0)]
