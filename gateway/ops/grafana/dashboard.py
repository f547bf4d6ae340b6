"""The alarm dashboard, built with Grafana Foundation SDK, and the folder it lives in."""

from __future__ import annotations

import json
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from gateway.ops.grafana.influxql import PLUGIN, register
from gateway.ops.grafana.panels import PANELS
from gateway.ops.grafana.queries import BUILDINGS

DASHBOARD_UID: Final = "scgw-alarms"
DASHBOARD_TITLE: Final = "Smart community: alarms"
FOLDER_UID: Final = "scgw"
FOLDER_TITLE: Final = "Smart community"
# the model version of Grafana 10.4 / 11.0; newer Grafana migrates it on load
SCHEMA_VERSION: Final = 39
CONSOLE_URL: Final = "http://scgw.local:8088"  # the Pi's console, as its [console] serves it


def datasource_ref(uid: str) -> dict[str, str]:
    return {"type": PLUGIN, "uid": uid}


def dashboard_builder(datasource_uid: str) -> dash.Dashboard:
    """The dashboard, its panels reading the InfluxDB data source `datasource_uid`."""
    register()
    source = cm.DataSourceRef(type_val=PLUGIN, uid=datasource_uid)
    builder = (
        dash.Dashboard(DASHBOARD_TITLE).uid(DASHBOARD_UID)
        .description("Alarms, device status, fever readings and manhole covers of the "
                     "compound, from the gateway's time-series store.")
        .tags(["scgw", "alarms"]).timezone("browser").editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-24h", "now").refresh("30s").fiscal_year_start_month(0).live_now(False)
        .links([])
        .annotation(dash.AnnotationQuery().built_in(1).name("Annotations & Alerts")
                    .datasource(cm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                    .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)")
                    .type("dashboard"))
        .with_variable(
            dash.QueryVariable("building").label("Building").datasource(source)
            .query(BUILDINGS.text).definition(BUILDINGS.text)
            # on dashboard load: new buildings appear without an edit
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .include_all(True).all_value(".*")  # also matches points without a building tag
            .multi(True).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
            .options([]).hide(dm.VariableHide.DONT_HIDE))
        .with_variable(
            # where the active alarms' links lead: the gateway's console
            dash.TextBoxVariable("console").label("Console").default_value(CONSOLE_URL)
            .current(dm.VariableOption(selected=False, text=CONSOLE_URL, value=CONSOLE_URL))
            .options([dm.VariableOption(selected=True, text=CONSOLE_URL, value=CONSOLE_URL)])
            .hide(dm.VariableHide.DONT_HIDE))
    )
    for panel in PANELS:
        builder = builder.with_panel(panel.builder(source))
    return builder


def dashboard_model(datasource_uid: str) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (what file provisioning and the API take)."""
    model = json.loads(json.dumps(dashboard_builder(datasource_uid).build(), cls=JSONEncoder))
    model["schemaVersion"] = SCHEMA_VERSION
    return dict(model)
