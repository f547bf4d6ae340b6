"""Grafana file provisioning: the data source, dashboard provider, dashboard and alert rules.

Grafana reads these from its provisioning directory (/etc/grafana/provisioning) at start;
deploy/grafana/provisioning/ holds them rendered with the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.ops.grafana.alert_rules import rule_group_file
from gateway.ops.grafana.dashboard import FOLDER_TITLE, FOLDER_UID, dashboard_model
from gateway.ops.grafana.datasource import (
    DASHBOARDS_PATH,
    DATASOURCE_UID,
    PASSWORD_ENV,
    InfluxSource,
    datasource_model,
)
from gateway.ops.grafana.model_check import check_dashboard

_HEADER = ("# Rendered by `scgw grafana export` from gateway/ops/grafana/: change the code there "
           "and export again.\n")


def provisioning_files(source: InfluxSource, *, dashboards_path: str = DASHBOARDS_PATH,
                       password_env: str = PASSWORD_ENV) -> dict[str, str]:
    """File name (relative to the provisioning directory) -> content.

    With a user or a token, the secret is left to Grafana to read from `password_env` at
    start, so no secret is written to disk.
    """
    secret = f"${{{password_env}}}" if source.user or source.token else None
    datasource = datasource_model(source, secret)
    provider = {
        "name": "scgw",
        "orgId": 1,
        "type": "file",
        "folder": FOLDER_TITLE,
        "folderUid": FOLDER_UID,
        "disableDeletion": True,
        # the dashboard is code: edits in the UI would be lost at the next export
        "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
    }
    dashboard = dashboard_model(DATASOURCE_UID)
    check_dashboard(dashboard)  # what Grafana would not read is never written
    return {
        "datasources/scgw.yaml": _yaml({"apiVersion": 1, "datasources": [datasource]}),
        "dashboards/scgw.yaml": _yaml({"apiVersion": 1, "providers": [provider]}),
        "dashboards/scgw/alarms.json": json.dumps(dashboard, indent=2,
                                                  ensure_ascii=False) + "\n",
        "alerting/scgw.yaml": _yaml(rule_group_file(FOLDER_TITLE, DATASOURCE_UID)),
    }


def write_files(directory: Path, files: Mapping[str, str]) -> list[Path]:
    """Write `files` under `directory`, creating folders; the paths written."""
    written = []
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def _yaml(document: Any) -> str:
    return _HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True,
                                    width=1000)  # a query stays on one line
