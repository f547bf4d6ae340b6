"""The panels of the alarm dashboard: what each shows, where, and with which query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from gateway.ops.grafana.queries import (
    ACTIVE_ALARMS,
    ALARM_COUNTS,
    ALARM_STATES,
    DEVICES_OFFLINE,
    FEVER_C,
    FEVER_READINGS,
    MANHOLE_TILT,
    TILT_ALARM_DEG,
    InfluxQuery,
)

PanelType = Literal["table", "state-timeline", "barchart", "timeseries"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """Position on Grafana's 24-column grid; h in rows of 30 px."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    id: int
    title: str
    description: str
    type: PanelType
    grid: Grid
    query: InfluxQuery
    defaults: Mapping[str, Any] = field(default_factory=dict)  # fieldConfig.defaults
    overrides: Sequence[Mapping[str, Any]] = ()  # fieldConfig.overrides
    options: Mapping[str, Any] = field(default_factory=dict)
    transformations: Sequence[Mapping[str, Any]] = ()


STATE_MAPPINGS: Final = [{"type": "value", "options": {
    "1": {"text": "firing", "color": "red", "index": 0},
    "2": {"text": "acknowledged", "color": "orange", "index": 1},
    "3": {"text": "resolved", "color": "green", "index": 2},
}}]

SEVERITY_COLORS: Final = {"critical": "red", "major": "orange", "minor": "yellow",
                          "info": "blue"}

_SEVERITY_MAPPINGS = [{"type": "value", "options": {
    name: {"color": color, "index": i} for i, (name, color) in enumerate(SEVERITY_COLORS.items())
}}]


def _by_name(name: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": key, "value": value} for key, value in properties]}


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute",
            "steps": [{"value": value, "color": color} for value, color in steps]}


_LEGEND: Final = {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []}
_TOOLTIP: Final = {"mode": "single", "sort": "none"}
_TABLE: Final = {"showHeader": True, "cellHeight": "sm",
                 "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False}}

# what every table panel's fields start from: plain cells, text colour
_TABLE_DEFAULTS = {"custom": {"align": "auto", "cellOptions": {"type": "auto"}},
                   "color": {"mode": "thresholds"},
                   "thresholds": _thresholds((None, "text"))}

PANELS: tuple[Panel, ...] = (
    Panel(
        id=1,
        title="Active alarms",
        description="Every alert whose latest transition is firing or acknowledged, "
                    "whatever the time range: firing first. Alerts keyed by a place "
                    "(building-3) have no location columns.",
        type="table",
        grid=Grid(x=0, y=0, w=24, h=9),
        query=ACTIVE_ALARMS,
        defaults=_TABLE_DEFAULTS,
        overrides=[
            _by_name("state", ("mappings", STATE_MAPPINGS),
                     ("custom.cellOptions", {"type": "color-background"})),
            _by_name("severity", ("mappings", _SEVERITY_MAPPINGS),
                     ("custom.cellOptions", {"type": "color-text"})),
            _by_name("since", ("unit", "dateTimeAsIso")),
            _by_name("last change", ("unit", "dateTimeAsIso")),
            # each alert on the duty office's console (the dashboard's `console` address)
            _by_name("device", ("links", [{
                "title": "Open on the duty office's console",
                "url": "${console}/?rule=${__data.fields.rule}&device=${__data.fields.device}",
                "targetBlank": True}])),
        ],
        options={**_TABLE, "sortBy": [{"displayName": "state", "desc": False}]},
        transformations=[{"id": "organize", "options": {
            "excludeByName": {},
            "indexByName": {"state_code": 0, "severity": 1, "device": 2, "kind": 3,
                            "building": 4, "unit": 5, "floor": 6, "rule": 7, "since": 8,
                            "Time": 9},
            "renameByName": {"state_code": "state", "Time": "last change"},
        }}],
    ),
    Panel(
        id=2,
        title="Alarm state per device",
        description="The state of each device's alerts over time, one row per device and "
                    "rule: red firing, orange acknowledged, green resolved.",
        type="state-timeline",
        grid=Grid(x=0, y=9, w=24, h=9),
        query=ALARM_STATES,
        defaults={"custom": {"fillOpacity": 80, "lineWidth": 0, "hideFrom": {
                      "legend": False, "tooltip": False, "viz": False}},
                  "color": {"mode": "thresholds"},
                  "thresholds": _thresholds((None, "transparent")),
                  "mappings": STATE_MAPPINGS},
        options={"mergeValues": True, "showValue": "auto", "alignValue": "left",
                 "rowHeight": 0.9, "legend": _LEGEND, "tooltip": _TOOLTIP},
    ),
    Panel(
        id=3,
        title="Alarms by kind and severity",
        description="Alerts raised in the time range, by device kind and severity.",
        type="barchart",
        grid=Grid(x=0, y=18, w=12, h=8),
        query=ALARM_COUNTS,
        defaults={"custom": {"fillOpacity": 80, "lineWidth": 1, "gradientMode": "none",
                             "axisPlacement": "auto", "axisSoftMin": 0},
                  "color": {"mode": "palette-classic"},
                  "decimals": 0, "min": 0, "unit": "none"},
        overrides=[_by_name(name, ("color", {"mode": "fixed", "fixedColor": color}))
                   for name, color in SEVERITY_COLORS.items()],
        options={"orientation": "auto", "stacking": "normal", "showValue": "auto",
                 "groupWidth": 0.7, "barWidth": 0.9, "xTickLabelRotation": 0,
                 "legend": _LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
        # one row per kind, one column per severity
        transformations=[{"id": "groupingToMatrix", "options": {
            "columnField": "severity", "rowField": "kind", "valueField": "alarms",
            "emptyValue": "zero"}}],
    ),
    Panel(
        id=4,
        title="Devices offline",
        description="Devices whose latest status change was to offline, whatever the time "
                    "range, and since when.",
        type="table",
        grid=Grid(x=12, y=18, w=12, h=8),
        query=DEVICES_OFFLINE,
        defaults=_TABLE_DEFAULTS,
        overrides=[_by_name("offline since", ("unit", "dateTimeAsIso")),
                   _by_name("device", ("custom.cellOptions", {"type": "color-text"}),
                            ("color", {"mode": "fixed", "fixedColor": "red"}))],
        options={**_TABLE, "sortBy": [{"displayName": "offline since", "desc": True}]},
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"online": True},
            "indexByName": {"device": 0, "kind": 1, "building": 2, "unit": 3, "floor": 4,
                            "Time": 5},
            "renameByName": {"Time": "offline since"},
        }}],
    ),
    Panel(
        id=5,
        title="Fever readings at the gates",
        description=f"Body temperatures at or above {FEVER_C} °C at the temperature gates "
                    "(no person is ever named), newest first.",
        type="table",
        grid=Grid(x=0, y=26, w=12, h=8),
        query=FEVER_READINGS,
        defaults=_TABLE_DEFAULTS,
        overrides=[_by_name("body temperature", ("unit", "celsius"), ("decimals", 1),
                            ("thresholds", _thresholds((None, "green"), (FEVER_C, "orange"),
                                                       (38.0, "red"))),
                            ("custom.cellOptions", {"type": "color-text"})),
                   _by_name("time", ("unit", "dateTimeAsIso"))],
        options={**_TABLE, "sortBy": [{"displayName": "time", "desc": True}]},
        transformations=[{"id": "organize", "options": {
            "excludeByName": {},
            "indexByName": {"Time": 0, "device": 1, "building": 2, "body_temp_c": 3},
            "renameByName": {"Time": "time", "body_temp_c": "body temperature"},
        }}],
    ),
    Panel(
        id=6,
        title="Manhole tilt",
        description=f"Highest tilt of each manhole cover; above {TILT_ALARM_DEG:g} degrees "
                    "the cover is lifted or displaced.",
        type="timeseries",
        grid=Grid(x=12, y=26, w=12, h=8),
        query=MANHOLE_TILT,
        defaults={"custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0,
                             "showPoints": "auto", "spanNulls": False,
                             "thresholdsStyle": {"mode": "line"}},
                  "color": {"mode": "palette-classic"},
                  "thresholds": _thresholds((None, "green"), (TILT_ALARM_DEG, "red")),
                  "unit": "degree", "min": 0},
        options={"legend": _LEGEND, "tooltip": _TOOLTIP},
    ),
)
