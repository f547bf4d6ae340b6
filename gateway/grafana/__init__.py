"""The Grafana alarm dashboard: one definition, rendered as provisioning files or pushed.

`queries` holds every InfluxQL query, `panels` and `dashboard` the dashboard built on them,
`datasource` the InfluxDB data source, `alert_rules` the Grafana-managed alert rules,
`files` the file-provisioning documents and `provision` the push to a running Grafana
(imported on its own: it loads the HTTP client).
"""

from gateway.grafana.alert_rules import ALERT_RULES, AlertRule
from gateway.grafana.dashboard import DASHBOARD_UID, FOLDER_UID, dashboard_model
from gateway.grafana.datasource import DATASOURCE_UID, InfluxSource, datasource_model
from gateway.grafana.files import provisioning_files
from gateway.grafana.panels import PANELS, Panel
from gateway.grafana.queries import QUERIES, InfluxQuery, render

__all__ = [
    "ALERT_RULES",
    "DASHBOARD_UID",
    "DATASOURCE_UID",
    "FOLDER_UID",
    "PANELS",
    "QUERIES",
    "AlertRule",
    "InfluxQuery",
    "InfluxSource",
    "Panel",
    "dashboard_model",
    "datasource_model",
    "provisioning_files",
    "render",
]
