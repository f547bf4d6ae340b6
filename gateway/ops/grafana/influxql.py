"""An InfluxQL query as a target of Grafana Foundation SDK panels.

The SDK types the queries of the data sources it knows (Prometheus, Loki, ...), not
InfluxDB's: this is the InfluxDB data source's raw-mode query in the SDK's shape, a
`Dataquery` variant registered with the SDK's runtime so that a dashboard read back with
`Dashboard.from_json` gives its targets this type again.
"""

from __future__ import annotations

from typing import Any, Final, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common

from gateway.ops.grafana.queries import InfluxQuery, ResultFormat

PLUGIN: Final = "influxdb"


class InfluxqlQuery(cogvariants.Dataquery):
    """One raw InfluxQL target: `query` is sent as written (Grafana's macros replaced)."""

    def __init__(self, ref_id: str = "A", query: str = "", result_format: ResultFormat = "table",
                 alias: str | None = None, datasource: common.DataSourceRef | None = None,
                 hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        payload.update({"query": self.query, "rawQuery": True,
                        "resultFormat": self.result_format})
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        unknown = set(data) - {"refId", "datasource", "query", "rawQuery", "resultFormat",
                               "alias", "hide"}
        if unknown or data.get("rawQuery") is not True:
            # what this type cannot say is dropped, and the check that reads it back sees so
            data = {k: v for k, v in data.items() if k not in unknown}
        source = data.get("datasource")
        return cls(ref_id=data.get("refId", ""), query=data.get("query", ""),
                   result_format=data.get("resultFormat", "table"), alias=data.get("alias"),
                   datasource=common.DataSourceRef.from_json(source)
                   if isinstance(source, dict) else None,
                   hide=data.get("hide"))


class Influxql(cogbuilder.Builder[InfluxqlQuery]):
    """The builder of an `InfluxqlQuery`, from one of the dashboard's tested queries."""

    def __init__(self, query: InfluxQuery, datasource: common.DataSourceRef) -> None:
        self._internal = InfluxqlQuery(query=query.text, result_format=query.result_format,
                                       alias=query.alias, datasource=datasource)

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def build(self) -> InfluxqlQuery:
        return self._internal


def register() -> None:
    """Make the SDK read targets of InfluxDB data sources as `InfluxqlQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
        identifier=PLUGIN, from_json_hook=InfluxqlQuery.from_json))
