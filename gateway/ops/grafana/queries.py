"""Every InfluxQL query of the alarm dashboard and its alert rules, in one place.

The queries read the points of `gateway/sinks/points.py` (see docs/data-model.md). They
use Grafana's macros `$timeFilter` and `$__interval` and the dashboard variable
`$building`; `render` replaces them the way Grafana does, so the same text can be run
against InfluxDB directly.

"Current state" queries (active alarms, devices offline and their alert rules) have no
time filter on purpose: an alarm raised a month ago and never acknowledged is still active,
whatever time range the dashboard shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

ResultFormat = Literal["table", "time_series"]

# the temp_gate.fever rule's condition (rules/packs/temp_gate.yaml): at or above 37.3 °C
FEVER_C: Final = 37.3
# the manhole.tilt rule's condition (rules/packs/manhole.yaml): above 10 degrees
TILT_ALARM_DEG: Final = 10.0

# the place tags every point may carry; alerts keyed by place (building-3) have none
_LOCATION = '"building", "unit", "floor"'
_IN_BUILDING = '"building" =~ /^$building$/'


@dataclass(frozen=True, slots=True, kw_only=True)
class InfluxQuery:
    """One InfluxQL query as Grafana sends it (raw mode)."""

    name: str
    text: str
    result_format: ResultFormat
    alias: str | None = None  # series name for time series, with $tag_<key> patterns


ACTIVE_ALARMS = InfluxQuery(
    name="active_alarms",
    result_format="table",
    text=(
        'SELECT "device", "kind", ' + _LOCATION + ', "rule", "severity", "since", '
        '"state_code" FROM ('
        'SELECT last("state_code") AS "state_code", "since" FROM "sc_alert" '
        "WHERE " + _IN_BUILDING + " "
        'GROUP BY "device", "kind", "rule", "severity", ' + _LOCATION + ") "
        'WHERE "state_code" < 3'
    ),
)

ALARM_STATES = InfluxQuery(
    name="alarm_states",
    result_format="time_series",
    alias="$tag_device $tag_rule",
    text=(
        'SELECT last("state_code") FROM "sc_alert" '
        "WHERE $timeFilter AND " + _IN_BUILDING + " "
        'GROUP BY time($__interval), "device", "rule" fill(previous)'
    ),
)

# every alert has exactly one firing transition (state code 1), so counting those counts
# alerts
ALARM_COUNTS = InfluxQuery(
    name="alarm_counts",
    result_format="table",
    text=(
        'SELECT count("state_code") AS "alarms" FROM "sc_alert" '
        'WHERE "state_code" = 1 AND $timeFilter AND ' + _IN_BUILDING + " "
        'GROUP BY "kind", "severity"'
    ),
)

DEVICES_OFFLINE = InfluxQuery(
    name="devices_offline",
    result_format="table",
    text=(
        'SELECT "device", "kind", ' + _LOCATION + ', "online" FROM ('
        'SELECT last("online") AS "online" FROM "sc_event" '
        "WHERE " + _IN_BUILDING + " "
        'GROUP BY "device", "kind", ' + _LOCATION + ") "
        'WHERE "online" = 0'
    ),
)

FEVER_READINGS = InfluxQuery(
    name="fever_readings",
    result_format="table",
    text=(
        f'SELECT "body_temp_c", "device", "building" FROM "sc_temp_gate" '
        f'WHERE "body_temp_c" >= {FEVER_C} AND $timeFilter AND {_IN_BUILDING} '
        "ORDER BY time DESC LIMIT 500"
    ),
)

MANHOLE_TILT = InfluxQuery(
    name="manhole_tilt",
    result_format="time_series",
    alias="$tag_device",
    text=(
        'SELECT max("tilt_deg") FROM "sc_manhole" '
        "WHERE $timeFilter AND " + _IN_BUILDING + " "
        'GROUP BY time($__interval), "device" fill(none)'
    ),
)

BUILDINGS = InfluxQuery(
    name="buildings",
    result_format="table",
    text='SHOW TAG VALUES WITH KEY = "building"',
)

# alert rules: one series per alert (a rule and its key) or device, so each fires and
# resolves on its own
CRITICAL_UNACKNOWLEDGED = InfluxQuery(
    name="critical_unacknowledged",
    result_format="time_series",
    text=(
        'SELECT "state_code" FROM ('
        'SELECT last("state_code") AS "state_code" FROM "sc_alert" '
        "WHERE \"severity\" = 'critical' "
        'GROUP BY "device", "rule") '
        'WHERE "state_code" = 1 GROUP BY "device", "rule"'
    ),
)

OFFLINE_DEVICES = InfluxQuery(
    name="offline_devices",
    result_format="time_series",
    text=(
        'SELECT "online" FROM ('
        'SELECT last("online") AS "online" FROM "sc_event" GROUP BY "device", "kind") '
        'WHERE "online" = 0 GROUP BY "device", "kind"'
    ),
)

QUERIES: Mapping[str, InfluxQuery] = {
    q.name: q
    for q in (ACTIVE_ALARMS, ALARM_STATES, ALARM_COUNTS, DEVICES_OFFLINE, FEVER_READINGS,
              MANHOLE_TILT, BUILDINGS, CRITICAL_UNACKNOWLEDGED, OFFLINE_DEVICES)
}

_MACRO = re.compile(r"\$(?:__)?\w+")


def render(text: str, *, start_ms: int, end_ms: int, interval: str = "10s",
           building: str = ".*") -> str:
    """`text` as Grafana sends it to InfluxDB for a time range and variable values.

    `building` is a regular expression, as Grafana formats the variable for `=~`: `.*`
    for All. Raises ValueError if a macro or variable is left that Grafana would fill.
    """
    rendered = (text.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
                .replace("$__interval", interval)
                .replace("$building", building))
    left = _MACRO.findall(rendered)
    if left:
        raise ValueError(f"unknown macro(s) {', '.join(sorted(set(left)))} in {text!r}")
    return rendered
