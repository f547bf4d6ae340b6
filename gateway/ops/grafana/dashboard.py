"""The alarm dashboard as a Grafana dashboard model (JSON), and the folder it lives in."""

from __future__ import annotations

from typing import Any, Final

from gateway.ops.grafana.panels import PANELS, Panel
from gateway.ops.grafana.queries import BUILDINGS

DASHBOARD_UID: Final = "scgw-alarms"
DASHBOARD_TITLE: Final = "Smart community: alarms"
FOLDER_UID: Final = "scgw"
FOLDER_TITLE: Final = "Smart community"
# the model version of Grafana 10.4 / 11.0; newer Grafana migrates it on load
SCHEMA_VERSION: Final = 39
CONSOLE_URL: Final = "http://scgw.local:8088"  # the Pi's console, as its [console] serves it


def datasource_ref(uid: str) -> dict[str, str]:
    return {"type": "influxdb", "uid": uid}


def dashboard_model(datasource_uid: str) -> dict[str, Any]:
    """The dashboard, its panels reading the InfluxDB data source `datasource_uid`."""
    ref = datasource_ref(datasource_uid)
    return {
        "uid": DASHBOARD_UID,
        "title": DASHBOARD_TITLE,
        "description": "Alarms, device status, fever readings and manhole covers of the "
                       "compound, from the gateway's time-series store.",
        "tags": ["scgw", "alarms"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [{
            "name": "building",
            "label": "Building",
            "type": "query",
            "datasource": ref,
            "query": BUILDINGS.text,
            "definition": BUILDINGS.text,
            "refresh": 1,  # on dashboard load: new buildings appear without an edit
            "includeAll": True,
            "allValue": ".*",  # also matches points without a building tag
            "multi": True,
            "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "hide": 0,
        }, {
            # where the active alarms' links lead: the gateway's console
            "name": "console",
            "label": "Console",
            "type": "textbox",
            "query": CONSOLE_URL,
            "current": {"selected": False, "text": CONSOLE_URL, "value": CONSOLE_URL},
            "options": [{"selected": True, "text": CONSOLE_URL, "value": CONSOLE_URL}],
            "hide": 0,
        }]},
        "panels": [_panel(panel, ref) for panel in PANELS],
    }


def _panel(panel: Panel, ref: dict[str, str]) -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": "A",
        "datasource": ref,
        "query": panel.query.text,
        "rawQuery": True,
        "resultFormat": panel.query.result_format,
    }
    if panel.query.alias is not None:
        target["alias"] = panel.query.alias
    return {
        "id": panel.id,
        "type": panel.type,
        "title": panel.title,
        "description": panel.description,
        "datasource": ref,
        "gridPos": {"x": panel.grid.x, "y": panel.grid.y, "w": panel.grid.w, "h": panel.grid.h},
        "targets": [target],
        "fieldConfig": {"defaults": dict(panel.defaults), "overrides": list(panel.overrides)},
        "options": dict(panel.options),
        "transformations": list(panel.transformations),
    }
