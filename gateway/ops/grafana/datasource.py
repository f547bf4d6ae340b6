"""The InfluxDB data source the dashboard reads, queried with InfluxQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

DATASOURCE_UID: Final = "scgw-influxdb"
DATASOURCE_NAME: Final = "Smart community InfluxDB"
# with a user or token, where Grafana reads the secret from (file provisioning)
PASSWORD_ENV: Final = "SCGW_INFLUXDB_PASSWORD"
# where Grafana finds the dashboard JSON: inside the provisioning directory it mounts
DASHBOARDS_PATH: Final = "/etc/grafana/provisioning/dashboards/scgw"


@dataclass(frozen=True, slots=True, kw_only=True)
class InfluxSource:
    """Where Grafana finds the gateway's store: the URL as Grafana's server reaches it."""

    url: str = "http://localhost:8086"
    database: str = "scgw"  # the store's database (gateway.toml [store] database)
    user: str | None = None
    # InfluxDB 2.x/3.x: InfluxQL through the 1.x compatibility API, authenticated with an
    # API token (`Authorization: Token ...`); the secret is then the token
    token: bool = False


def datasource_model(source: InfluxSource, password: str | None = None) -> dict[str, Any]:
    """The data source for Grafana's HTTP API (POST /api/datasources) and provisioning files.

    `password` (the user's password, or the API token with `source.token`) goes into
    secureJsonData, which Grafana stores encrypted and never returns.
    """
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": source.url,
        # `database` for Grafana up to 8, jsonData.dbName from 9 on
        "database": source.database,
        "basicAuth": False,
        "isDefault": False,
        "jsonData": {"version": "InfluxQL", "dbName": source.database, "httpMode": "GET",
                     # the store holds millisecond points; no finer grouping is useful
                     "timeInterval": "1s"},
    }
    if source.token:
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        if password is not None:
            model["secureJsonData"] = {"httpHeaderValue1": f"Token {password}"}
    elif source.user:
        model["user"] = source.user
        if password is not None:
            model["secureJsonData"] = {"password": password}
    return model
