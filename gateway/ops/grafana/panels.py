"""The panels of the alarm dashboard: what each shows, where, and with which query.

Each panel is drawn with the typed builders of Grafana Foundation SDK (Grafana's own
dashboard types): a misspelt option or a value of the wrong type is an error here, not a
panel Grafana shows blank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import barchart, common, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from gateway.ops.grafana.influxql import Influxql
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

# where the active alarms' links lead: the dashboard's `console` variable, and there the
# board with the alert in focus
CONSOLE_LINK: Final = "${console}/?rule=${__data.fields.rule}&device=${__data.fields.device}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """Position on Grafana's 24-column grid; h in rows of 30 px."""

    x: int
    y: int
    w: int
    h: int


class _Common(Protocol):
    """What every panel builder of the SDK has."""

    def id(self, id_val: int) -> Self: ...
    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: cm.DataSourceRef) -> Self: ...
    def grid_pos(self, grid_pos: dm.GridPos) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def build(self) -> dm.Panel: ...


_P = TypeVar("_P", bound=_Common)


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    id: int
    title: str
    description: str
    type: PanelType
    grid: Grid
    query: InfluxQuery
    # the visualisation and its options, as the SDK's builder of that panel type
    look: Callable[[], _Common]

    def builder(self, datasource: cm.DataSourceRef) -> cogbuilder.Builder[dm.Panel]:
        """The panel's builder, placed and reading `query` from `datasource`."""
        return _Built(_place(self.look(), self, datasource).build())


class _Built(cogbuilder.Builder[dm.Panel]):
    def __init__(self, panel: dm.Panel) -> None:
        self._panel = panel

    def build(self) -> dm.Panel:
        return self._panel


def _place(panel: _P, spec: Panel, datasource: cm.DataSourceRef) -> _P:
    return (panel.id(spec.id).title(spec.title).description(spec.description)
            .datasource(datasource)
            .grid_pos(dm.GridPos(x=spec.grid.x, y=spec.grid.y, w=spec.grid.w, h=spec.grid.h))
            .with_target(Influxql(spec.query, datasource).ref_id("A")))


STATE_MAPPINGS: Final[list[dm.ValueMapping]] = [dm.ValueMap(options={
    "1": dm.ValueMappingResult(text="firing", color="red", index=0),
    "2": dm.ValueMappingResult(text="acknowledged", color="orange", index=1),
    "3": dm.ValueMappingResult(text="resolved", color="green", index=2),
})]

SEVERITY_COLORS: Final = {"critical": "red", "major": "orange", "minor": "yellow",
                          "info": "blue"}

_SEVERITY_MAPPINGS: Final[list[dm.ValueMapping]] = [dm.ValueMap(options={
    name: dm.ValueMappingResult(color=color, index=i)
    for i, (name, color) in enumerate(SEVERITY_COLORS.items())})]


def _prop(key: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=key, value=value)


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=value, color=color) for value, color in steps])


def _fixed(color: str) -> dash.FieldColor:
    return dash.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(color)


def _legend() -> common.VizLegendOptions:
    return (common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM).calcs([]))


def _tooltip(mode: cm.TooltipDisplayMode = cm.TooltipDisplayMode.SINGLE,
             sort: cm.SortOrder = cm.SortOrder.NONE) -> common.VizTooltipOptions:
    return common.VizTooltipOptions().mode(mode).sort(sort)


def _organize(index: dict[str, int], rename: dict[str, str],
              exclude: dict[str, bool] | None = None) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": exclude or {}, "indexByName": index, "renameByName": rename})


def _table(sort_by: str, desc: bool) -> table.Panel:
    """A table: plain cells in the text colour, a header, no footer."""
    return (table.Panel().show_header(True).cell_height(cm.TableCellHeight.SM)
            .footer(common.TableFooterOptions().show(False).reducer(["sum"]).fields([])
                    .count_rows(False))
            .sort_by([common.TableSortByFieldState().display_name(sort_by).desc(desc)])
            .align(cm.FieldTextAlignment.AUTO).cell_options(cm.TableAutoCellOptions())
            .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(_thresholds((None, "text"))))


def _active_alarms() -> table.Panel:
    return (_table("state", desc=False)
            .override_by_name("state", [
                _prop("mappings", STATE_MAPPINGS),
                _prop("custom.cellOptions", cm.TableColoredBackgroundCellOptions())])
            .override_by_name("severity", [
                _prop("mappings", _SEVERITY_MAPPINGS),
                _prop("custom.cellOptions", cm.TableColorTextCellOptions())])
            .override_by_name("since", [_prop("unit", "dateTimeAsIso")])
            .override_by_name("last change", [_prop("unit", "dateTimeAsIso")])
            # each alert on the duty office's console (the dashboard's `console` address)
            # (a data link is {title, url, targetBlank}: the SDK's v1 types have only the
            # dashboard's links, whose extra keys a data link does not take)
            .override_by_name("device", [_prop("links", [
                {"title": "Open on the duty office's console", "url": CONSOLE_LINK,
                 "targetBlank": True}])])
            .with_transformation(_organize(
                {"state_code": 0, "severity": 1, "device": 2, "kind": 3, "building": 4,
                 "unit": 5, "floor": 6, "rule": 7, "since": 8, "Time": 9},
                {"state_code": "state", "Time": "last change"})))


def _alarm_states() -> statetimeline.Panel:
    return (statetimeline.Panel().fill_opacity(80).line_width(0)
            .hide_from(common.HideSeriesConfig().legend(False).tooltip(False).viz(False))
            .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(_thresholds((None, "transparent"))).mappings(STATE_MAPPINGS)
            .merge_values(True).show_value(cm.VisibilityMode.AUTO)
            .align_value(cm.TimelineValueAlignment.LEFT).row_height(0.9)
            .legend(_legend()).tooltip(_tooltip()))


def _alarm_counts() -> barchart.Panel:
    panel = (barchart.Panel().fill_opacity(80).line_width(1)
             .gradient_mode(cm.GraphGradientMode.NONE).axis_placement(cm.AxisPlacement.AUTO)
             .axis_soft_min(0).color_scheme(dash.FieldColor().mode(
                 dm.FieldColorModeId.PALETTE_CLASSIC))
             .decimals(0).min(0).unit("none")
             .orientation(cm.VizOrientation.AUTO)
             .stacking(cm.StackingMode.NORMAL).show_value(cm.VisibilityMode.AUTO)
             .group_width(0.7).bar_width(0.9).x_tick_label_rotation(0)
             .legend(_legend()).tooltip(_tooltip(cm.TooltipDisplayMode.MULTI,
                                                 cm.SortOrder.DESCENDING))
             # one row per kind, one column per severity
             .with_transformation(dm.DataTransformerConfig(id_val="groupingToMatrix", options={
                 "columnField": "severity", "rowField": "kind", "valueField": "alarms",
                 "emptyValue": "zero"})))
    for name, color in SEVERITY_COLORS.items():
        panel = panel.override_by_name(name, [_prop("color", _fixed(color).build())])
    return panel


def _devices_offline() -> table.Panel:
    return (_table("offline since", desc=True)
            .override_by_name("offline since", [_prop("unit", "dateTimeAsIso")])
            .override_by_name("device", [
                _prop("custom.cellOptions", cm.TableColorTextCellOptions()),
                _prop("color", _fixed("red").build())])
            .with_transformation(_organize(
                {"device": 0, "kind": 1, "building": 2, "unit": 3, "floor": 4, "Time": 5},
                {"Time": "offline since"}, exclude={"online": True})))


def _fever_readings() -> table.Panel:
    return (_table("time", desc=True)
            .override_by_name("body temperature", [
                _prop("unit", "celsius"), _prop("decimals", 1),
                _prop("thresholds", _thresholds((None, "green"), (FEVER_C, "orange"),
                                                (38.0, "red")).build()),
                _prop("custom.cellOptions", cm.TableColorTextCellOptions())])
            .override_by_name("time", [_prop("unit", "dateTimeAsIso")])
            .with_transformation(_organize(
                {"Time": 0, "device": 1, "building": 2, "body_temp_c": 3},
                {"Time": "time", "body_temp_c": "body temperature"})))


def _manhole_tilt() -> timeseries.Panel:
    return (timeseries.Panel().draw_style(cm.GraphDrawStyle.LINE).line_width(1)
            .fill_opacity(0).show_points(cm.VisibilityMode.AUTO).span_nulls(False)
            .thresholds_style(common.GraphThresholdsStyleConfig().mode(
                cm.GraphThresholdsStyleMode.LINE))
            .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
            .thresholds(_thresholds((None, "green"), (TILT_ALARM_DEG, "red")))
            .unit("degree").min(0).legend(_legend()).tooltip(_tooltip()))


PANELS: tuple[Panel, ...] = (
    Panel(
        id=1,
        title="Active alarms",
        description="Every alert whose latest transition is firing or acknowledged, "
                    "whatever the time range: firing first. Alerts keyed by a place "
                    "(building-3) have no location columns. Each device opens its alert "
                    "on the duty office's console.",
        type="table",
        grid=Grid(x=0, y=0, w=24, h=9),
        query=ACTIVE_ALARMS,
        look=_active_alarms,
    ),
    Panel(
        id=2,
        title="Alarm state per device",
        description="The state of each device's alerts over time, one row per device and "
                    "rule: red firing, orange acknowledged, green resolved.",
        type="state-timeline",
        grid=Grid(x=0, y=9, w=24, h=9),
        query=ALARM_STATES,
        look=_alarm_states,
    ),
    Panel(
        id=3,
        title="Alarms by kind and severity",
        description="Alerts raised in the time range, by device kind and severity.",
        type="barchart",
        grid=Grid(x=0, y=18, w=12, h=8),
        query=ALARM_COUNTS,
        look=_alarm_counts,
    ),
    Panel(
        id=4,
        title="Devices offline",
        description="Devices whose latest status change was to offline, whatever the time "
                    "range, and since when.",
        type="table",
        grid=Grid(x=12, y=18, w=12, h=8),
        query=DEVICES_OFFLINE,
        look=_devices_offline,
    ),
    Panel(
        id=5,
        title="Fever readings at the gates",
        description=f"Body temperatures at or above {FEVER_C} °C at the temperature gates "
                    "(no person is ever named), newest first.",
        type="table",
        grid=Grid(x=0, y=26, w=12, h=8),
        query=FEVER_READINGS,
        look=_fever_readings,
    ),
    Panel(
        id=6,
        title="Manhole tilt",
        description=f"Highest tilt of each manhole cover; above {TILT_ALARM_DEG:g} degrees "
                    "the cover is lifted or displaced.",
        type="timeseries",
        grid=Grid(x=12, y=26, w=12, h=8),
        query=MANHOLE_TILT,
        look=_manhole_tilt,
    ),
)
