"""Grafana's data source, dashboard and alert rule models, as far as the gateway uses them.

Strict pydantic models: a missing required field, a value of the wrong type, an unknown
panel type or a reference to another data source fails validation; in a data source or an
alert rule, a misspelt key too. A dashboard's keys are checked by Grafana Foundation SDK's
own types (gateway/ops/grafana/model_check.py): these models ignore the keys the SDK adds
with their defaults. Field names and allowed values follow
Grafana's dashboard JSON model (schemaVersion 39), its data source API and its alerting
provisioning API and files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from gateway.ops.grafana.datasource import DATASOURCE_UID
from gateway.ops.grafana.queries import QUERIES

# Grafana's built-in panel plugins
PANEL_TYPES = {"timeseries", "table", "stat", "gauge", "bargauge", "barchart", "state-timeline",
               "status-history", "piechart", "text", "heatmap", "histogram", "logs", "news",
               "nodeGraph", "traces", "flamegraph", "geomap", "canvas", "dashlist", "alertlist",
               "annolist", "xychart", "trend", "candlestick", "datagrid"}
# Grafana's built-in data transformations (ids)
TRANSFORMATIONS = {"organize", "groupingToMatrix", "merge", "filterFieldsByName",
                   "sortBy", "calculateField", "reduce", "joinByField", "labelsToFields",
                   "seriesToRows", "groupBy", "filterByValue", "renameByRegex"}
UNITS = {"dateTimeAsIso", "celsius", "degree", "none", "short", "percent"}
COLORS = {"red", "orange", "yellow", "green", "blue", "text", "transparent"}
INFLUXQL = {q.text for q in QUERIES.values()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Typed(BaseModel):
    """Values checked; keys left to the SDK's check."""

    model_config = ConfigDict(extra="ignore", strict=True)


class DataSourceRef(_Strict):
    type: Literal["influxdb"]
    uid: Literal["scgw-influxdb"]


class GridPos(_Strict):
    x: int = Field(ge=0, le=23)
    y: int = Field(ge=0)
    w: int = Field(ge=1, le=24)
    h: int = Field(ge=1)

    @model_validator(mode="after")
    def _inside_24_columns(self) -> GridPos:
        assert self.x + self.w <= 24, f"panel reaches column {self.x + self.w} of 24"
        return self

    def cells(self) -> set[tuple[int, int]]:
        return {(x, y) for x in range(self.x, self.x + self.w)
                for y in range(self.y, self.y + self.h)}


class Target(_Strict):
    refId: str = Field(pattern=r"^[A-Z]$")
    datasource: DataSourceRef
    query: str
    rawQuery: Literal[True]
    resultFormat: Literal["time_series", "table"]
    alias: str | None = None

    @model_validator(mode="after")
    def _a_known_query(self) -> Target:
        assert self.query in INFLUXQL, f"query not in gateway.ops.grafana.queries: {self.query}"
        return self


class Threshold(_Strict):
    value: float | None
    color: str


class Thresholds(_Strict):
    mode: Literal["absolute", "percentage"]
    steps: list[Threshold] = Field(min_length=1)

    @model_validator(mode="after")
    def _base_first(self) -> Thresholds:
        assert self.steps[0].value is None, "the first step is the base (value null)"
        values = [s.value for s in self.steps[1:]]
        assert all(v is not None for v in values)
        numbers = [v for v in values if v is not None]
        assert numbers == sorted(numbers)
        return self


class ValueMappingResult(_Strict):
    text: str | None = None
    color: str | None = None
    index: int


class ValueMapping(_Strict):
    type: Literal["value"]
    options: dict[str, ValueMappingResult]


class Color(_Strict):
    mode: Literal["thresholds", "palette-classic", "fixed"]
    fixedColor: str | None = None


class FieldDefaults(_Strict):
    custom: dict[str, Any] = {}
    color: Color | None = None
    thresholds: Thresholds | None = None
    mappings: list[ValueMapping] = []
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None


class Matcher(_Strict):
    id: Literal["byName"]
    options: str


class Property(_Strict):
    id: Literal["unit", "decimals", "mappings", "thresholds", "color", "custom.cellOptions",
                "displayName", "links"]
    value: Any

    @model_validator(mode="after")
    def _valid_value(self) -> Property:
        if self.id == "unit":
            assert self.value in UNITS, self.value
        elif self.id == "mappings":
            [ValueMapping.model_validate(m) for m in self.value]
        elif self.id == "thresholds":
            Thresholds.model_validate(self.value)
        elif self.id == "color":
            Color.model_validate(self.value)
        elif self.id == "links":
            [DataLink.model_validate(link) for link in self.value]
        return self


class DataLink(_Strict):
    """A data link: Grafana fills `${...}` in its url from the row it is clicked on."""

    title: str = Field(min_length=1)
    url: str = Field(min_length=1)
    targetBlank: bool = False


class Override(_Strict):
    matcher: Matcher
    properties: list[Property] = Field(min_length=1)


class FieldConfig(_Strict):
    defaults: FieldDefaults
    overrides: list[Override]


class Transformation(_Strict):
    id: str
    options: dict[str, Any]

    @model_validator(mode="after")
    def _known(self) -> Transformation:
        assert self.id in TRANSFORMATIONS, self.id
        return self


class Panel(_Typed):
    id: int = Field(ge=1)
    type: str
    title: str = Field(min_length=1)
    description: str
    datasource: DataSourceRef
    gridPos: GridPos
    targets: list[Target] = Field(min_length=1)
    fieldConfig: FieldConfig
    options: dict[str, Any]
    transformations: list[Transformation] = []

    @model_validator(mode="after")
    def _known_type(self) -> Panel:
        assert self.type in PANEL_TYPES, f"unknown panel type {self.type}"
        assert len({t.refId for t in self.targets}) == len(self.targets)
        return self


class Variable(_Typed):
    name: str = Field(pattern=r"^\w+$")
    label: str
    type: Literal["query"]
    datasource: DataSourceRef
    query: str
    definition: str
    refresh: Literal[1, 2]
    includeAll: bool
    allValue: str | None
    multi: bool
    sort: int
    current: dict[str, Any]
    options: list[Any]
    hide: Literal[0, 1, 2]


class TextVariable(_Typed):
    """A text box on the dashboard (its value in `query`), e.g. another service's address."""

    name: str = Field(pattern=r"^\w+$")
    label: str
    type: Literal["textbox"]
    query: str
    current: dict[str, Any]
    options: list[Any]
    hide: Literal[0, 1, 2]


class Templating(_Strict):
    variables: list[Variable | TextVariable] = Field(alias="list")


class TimeRange(_Strict):
    from_: str = Field(alias="from")
    to: str


class Dashboard(_Typed):
    id: None = None
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    title: str = Field(min_length=1)
    description: str
    tags: list[str]
    timezone: Literal["browser", "utc", ""]
    editable: bool
    graphTooltip: Literal[0, 1, 2]
    schemaVersion: int = Field(ge=36, le=41)
    time: TimeRange
    refresh: str
    fiscalYearStartMonth: int
    liveNow: bool
    links: list[Any]
    annotations: dict[str, Any]
    templating: Templating
    panels: list[Panel] = Field(min_length=1)

    @model_validator(mode="after")
    def _layout(self) -> Dashboard:
        assert len({p.id for p in self.panels}) == len(self.panels), "panel ids repeat"
        taken: dict[tuple[int, int], str] = {}
        for panel in self.panels:
            for cell in panel.gridPos.cells():
                assert cell not in taken, f"{panel.title} overlaps {taken[cell]} at {cell}"
                taken[cell] = panel.title
        return self


class JsonData(_Strict):
    version: Literal["InfluxQL"]
    dbName: str = Field(min_length=1)
    httpMode: Literal["GET", "POST"]
    timeInterval: str = Field(pattern=r"^\d+(ms|s|m|h)$")
    # a custom header: how Grafana sends InfluxDB 2.x/3.x's `Authorization: Token ...`
    httpHeaderName1: Literal["Authorization"] | None = None


class DataSource(_Strict):
    uid: Literal["scgw-influxdb"]
    name: str = Field(min_length=1)
    type: Literal["influxdb"]
    access: Literal["proxy"]
    url: HttpUrl
    database: str
    basicAuth: bool
    isDefault: bool
    jsonData: JsonData
    user: str | None = None
    secureJsonData: dict[Literal["password", "httpHeaderValue1"], str] | None = None

    @model_validator(mode="after")
    def _header_has_its_value(self) -> DataSource:
        secrets = self.secureJsonData or {}
        if self.jsonData.httpHeaderName1 is not None:
            assert self.user is None, "a token data source has no user"
            value = secrets.get("httpHeaderValue1", "Token x")
            assert value.startswith("Token "), "InfluxDB's token scheme is 'Token <token>'"
        else:
            assert "httpHeaderValue1" not in secrets, "a header value without its name"
        return self

    model_config = ConfigDict(extra="forbid", strict=False)  # url as a string

    @model_validator(mode="after")
    def _one_database(self) -> DataSource:
        assert self.database == self.jsonData.dbName
        return self


class RelativeTimeRange(_Strict):
    from_: int = Field(alias="from", ge=0)
    to: int = Field(ge=0)


class AlertQuery(_Strict):
    refId: str = Field(pattern=r"^[A-Z]$")
    queryType: str
    datasourceUid: Literal["scgw-influxdb", "__expr__"]
    relativeTimeRange: RelativeTimeRange
    model: dict[str, Any]

    @model_validator(mode="after")
    def _model(self) -> AlertQuery:
        assert self.model["refId"] == self.refId
        if self.datasourceUid == DATASOURCE_UID:
            assert self.model["query"] in INFLUXQL
            assert self.model["rawQuery"] is True
            assert self.relativeTimeRange.from_ > self.relativeTimeRange.to
        else:
            assert self.model["type"] in ("reduce", "threshold", "math")
            assert self.model["datasource"] == {"type": "__expr__", "uid": "__expr__"}
        return self


class _AlertRuleBase(_Strict):
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    title: str = Field(min_length=1)
    condition: str
    data: list[AlertQuery] = Field(min_length=2)
    noDataState: Literal["NoData", "Alerting", "OK", "KeepLast"]
    execErrState: Literal["Error", "Alerting", "OK", "KeepLast"]
    for_: str = Field(alias="for", pattern=r"^\d+[smh]$")
    labels: dict[str, str]
    annotations: dict[str, str]
    isPaused: bool

    @model_validator(mode="after")
    def _wired(self) -> _AlertRuleBase:
        refs = [q.refId for q in self.data]
        assert len(set(refs)) == len(refs)
        assert self.condition in refs
        for query in self.data:
            expression = query.model.get("expression")
            if expression is not None:
                assert expression in refs
                assert expression != query.refId
        return self


class ApiAlertRule(_AlertRuleBase):
    """POST/PUT /api/v1/provisioning/alert-rules."""

    orgID: int
    folderUID: str
    ruleGroup: str = Field(min_length=1)


class FileAlertRule(_AlertRuleBase):
    """A rule in an alerting provisioning file."""

    dashboardUid: str
    panelId: int


class FileRuleGroup(_Strict):
    orgId: int
    name: str
    folder: str
    interval: str = Field(pattern=r"^\d+[smh]$")
    rules: list[FileAlertRule] = Field(min_length=1)


class AlertingFile(_Strict):
    apiVersion: Literal[1]
    groups: list[FileRuleGroup]
