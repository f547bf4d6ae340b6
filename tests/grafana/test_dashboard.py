"""The dashboard, data source and alert rules are valid Grafana models, and the committed
provisioning files are exactly what the code renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway.ops.cli import app
from gateway.ops.grafana.alert_rules import ALERT_RULES, api_rule
from gateway.ops.grafana.dashboard import DASHBOARD_UID, FOLDER_TITLE, FOLDER_UID, dashboard_model
from gateway.ops.grafana.datasource import (
    DASHBOARDS_PATH,
    DATASOURCE_UID,
    InfluxSource,
    datasource_model,
)
from gateway.ops.grafana.files import provisioning_files
from gateway.ops.grafana.model_check import (
    DashboardModelError,
    check_dashboard,
    dashboard_problems,
)
from gateway.ops.grafana.panels import PANELS
from gateway.ops.grafana.queries import QUERIES
from tests.grafana.grafana_models import AlertingFile, ApiAlertRule, Dashboard, DataSource

COMMITTED = Path(__file__).parents[2] / "deploy" / "grafana" / "provisioning"
COMPOSE = Path(__file__).parents[2] / "deploy" / "compose" / "grafana" / "provisioning"


def test_dashboard_is_a_valid_grafana_dashboard() -> None:
    dashboard = Dashboard.model_validate(dashboard_model(DATASOURCE_UID))
    assert dashboard.uid == DASHBOARD_UID
    assert {p.type for p in dashboard.panels} == {"table", "state-timeline", "barchart",
                                                  "timeseries"}
    assert [v.name for v in dashboard.templating.variables] == ["building", "console"]
    assert dashboard.templating.variables[0].query == QUERIES["buildings"].text


def test_validation_catches_what_grafana_would_not_show() -> None:
    model = dashboard_model(DATASOURCE_UID)
    overlapping = json.loads(json.dumps(model))
    overlapping["panels"][1]["gridPos"]["y"] = 3
    with pytest.raises(ValidationError, match="overlaps"):
        Dashboard.model_validate(overlapping)
    other_source = json.loads(json.dumps(model))
    other_source["panels"][0]["targets"][0]["datasource"]["uid"] = "elsewhere"
    with pytest.raises(ValidationError, match="scgw-influxdb"):
        Dashboard.model_validate(other_source)



def test_grafana_foundation_sdk_reads_the_dashboard_back_as_it_is() -> None:
    model = dashboard_model(DATASOURCE_UID)
    assert dashboard_problems(model) == []
    # what the SDK's types do not know is named, wherever it is
    misspelt = json.loads(json.dumps(model))
    misspelt["panels"][0]["gridpos"] = misspelt["panels"][0].pop("gridPos")
    misspelt["panels"][1]["options"]["rowHieght"] = 0.9
    misspelt["panels"][0]["fieldConfig"]["defaults"]["custom"]["algin"] = "left"
    misspelt["panels"][2]["targets"][0]["rawquery"] = True
    misspelt["templating"]["list"][1]["defualt"] = "x"
    assert dashboard_problems(misspelt) == [
        "/templating/list[1]/defualt: not a key of Grafana's model",
        "/panels[0]/fieldConfig/defaults/custom/algin: not a key of Grafana's model",
        "/panels[0]/gridpos: not a key of Grafana's model",
        "/panels[1]/options/rowHieght: not a key of Grafana's model",
        "/panels[2]/targets[0]/rawquery: not a key of Grafana's model",
    ]
    with pytest.raises(DashboardModelError, match="gridpos"):
        check_dashboard(misspelt)
    # the committed files were checked the same way
    for committed in (COMMITTED, COMPOSE):
        text = (committed / "dashboards" / "scgw" / "alarms.json").read_text(encoding="utf-8")
        assert dashboard_problems(json.loads(text)) == []


def test_every_panel_reads_a_tested_query_with_grafanas_macros() -> None:
    for panel in PANELS:
        assert QUERIES[panel.query.name] is panel.query
        if panel.query.result_format == "time_series":
            assert "GROUP BY time($__interval)" in panel.query.text, panel.title
        if panel.type in ("state-timeline", "barchart", "timeseries") or panel.id == 5:
            assert "$timeFilter" in panel.query.text, panel.title
        assert '"building" =~ /^$building$/' in panel.query.text, panel.title


def test_state_codes_and_fever_threshold_are_mapped() -> None:
    model = dashboard_model(DATASOURCE_UID)
    timeline = next(p for p in model["panels"] if p["type"] == "state-timeline")
    (mapping,) = timeline["fieldConfig"]["defaults"]["mappings"]
    assert {k: (v["text"], v["color"]) for k, v in mapping["options"].items()} == {
        "1": ("firing", "red"), "2": ("acknowledged", "orange"), "3": ("resolved", "green")}
    fever = next(p for p in model["panels"] if p["title"] == "Fever readings at the gates")
    (override,) = [o for o in fever["fieldConfig"]["overrides"]
                   if o["matcher"]["options"] == "body temperature"]
    properties = {p["id"]: p["value"] for p in override["properties"]}
    assert properties["unit"] == "celsius"
    assert [s["value"] for s in properties["thresholds"]["steps"]] == [None, 37.3, 38.0]


def test_datasource_is_a_valid_grafana_influxql_datasource() -> None:
    plain = DataSource.model_validate(datasource_model(InfluxSource()))
    assert (str(plain.url), plain.jsonData.dbName, plain.user) == (
        "http://localhost:8086/", "scgw", None)
    assert plain.secureJsonData is None
    secured = DataSource.model_validate(datasource_model(
        InfluxSource(url="http://influx.lan:8086", database="c1", user="grafana"), "s3cret"))
    assert (secured.user, secured.secureJsonData) == ("grafana", {"password": "s3cret"})
    token = DataSource.model_validate(datasource_model(
        InfluxSource(url="http://influxdb:8086", token=True), "tok3n"))
    assert token.user is None
    assert token.jsonData.httpHeaderName1 == "Authorization"
    assert token.secureJsonData == {"httpHeaderValue1": "Token tok3n"}


def test_alert_rules_are_valid_provisioning_api_rules() -> None:
    for rule in ALERT_RULES:
        body = ApiAlertRule.model_validate(api_rule(rule, DATASOURCE_UID))
        assert body.folderUID == FOLDER_UID
        assert body.data[0].model["query"] == rule.query.text
        assert body.annotations["__dashboardUid__"] == DASHBOARD_UID


def test_committed_provisioning_files_are_what_the_code_renders() -> None:
    expected = provisioning_files(InfluxSource())
    committed = {str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
                 for p in COMMITTED.rglob("*") if p.is_file()}
    assert set(committed) == set(expected), "run: scgw grafana export deploy/grafana/provisioning"
    for name, content in expected.items():
        assert committed[name] == content, (
            f"{name} differs: run scgw grafana export deploy/grafana/provisioning")


def test_provisioning_files_are_valid_grafana_provisioning() -> None:
    files = provisioning_files(InfluxSource(user="grafana"), password_env="INFLUX_PW")
    (datasource,) = yaml.safe_load(files["datasources/scgw.yaml"])["datasources"]
    assert DataSource.model_validate(datasource).secureJsonData == {"password": "${INFLUX_PW}"}
    (provider,) = yaml.safe_load(files["dashboards/scgw.yaml"])["providers"]
    assert (provider["type"], provider["folderUid"], provider["folder"]) == (
        "file", FOLDER_UID, FOLDER_TITLE)
    # the provider points at the dashboard JSON inside the mounted provisioning directory
    (json_name,) = [name for name in files if name.endswith(".json")]
    assert provider["options"]["path"] == DASHBOARDS_PATH == (
        f"/etc/grafana/provisioning/{Path(json_name).parent}")
    Dashboard.model_validate(json.loads(files["dashboards/scgw/alarms.json"]))
    alerting = AlertingFile.model_validate(yaml.safe_load(files["alerting/scgw.yaml"]))
    (group,) = alerting.groups
    assert group.folder == FOLDER_TITLE
    assert [r.uid for r in group.rules] == [r.uid for r in ALERT_RULES]


def test_export_command_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["grafana", "export", str(tmp_path),
                                      "--datasource-url", "http://influx.lan:8086",
                                      "--database", "c1"])
    assert result.exit_code == 0, result.output
    expected = provisioning_files(InfluxSource(url="http://influx.lan:8086", database="c1"))
    for name, content in expected.items():
        assert (tmp_path / name).read_text(encoding="utf-8") == content
        assert f"wrote {tmp_path / name}" in result.output
    (datasource,) = yaml.safe_load(expected["datasources/scgw.yaml"])["datasources"]
    assert (datasource["url"], datasource["jsonData"]["dbName"]) == ("http://influx.lan:8086",
                                                                     "c1")


def test_active_alarms_link_each_alert_to_the_console() -> None:
    model = dashboard_model(DATASOURCE_UID)
    [table] = [p for p in model["panels"] if p["title"] == "Active alarms"]
    [links] = [prop["value"] for o in table["fieldConfig"]["overrides"]
               if o["matcher"]["options"] == "device"
               for prop in o["properties"] if prop["id"] == "links"]
    assert links[0]["url"] == ("${console}/?rule=${__data.fields.rule}"
                               "&device=${__data.fields.device}")
    assert links[0]["targetBlank"] is True
    [console] = [v for v in model["templating"]["list"] if v["name"] == "console"]
    assert console["type"] == "textbox"
    assert console["query"] == "http://scgw.local:8088"

