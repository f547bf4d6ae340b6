"""`scgw grafana provision` against a local server that answers like Grafana."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from gateway.ops.cli import app
from gateway.ops.grafana.dashboard import DASHBOARD_UID, FOLDER_TITLE, FOLDER_UID
from gateway.ops.private_servers import free_port
from tests.grafana.fake_grafana import FakeGrafana, serving
from tests.grafana.grafana_models import ApiAlertRule, Dashboard, DataSource

TOKEN = "glsa_0123456789abcdef"
RULES = ["scgw-critical-unacknowledged", "scgw-device-offline"]

FIRST_RUN = [
    ("GET", "/grafana/api/datasources/uid/scgw-influxdb"),
    ("POST", "/grafana/api/datasources"),
    ("GET", "/grafana/api/folders/scgw"),
    ("POST", "/grafana/api/folders"),
    ("POST", "/grafana/api/dashboards/db"),
    *[call for uid in RULES for call in (
        ("GET", f"/grafana/api/v1/provisioning/alert-rules/{uid}"),
        ("POST", "/grafana/api/v1/provisioning/alert-rules"))],
]
SECOND_RUN = [
    ("GET", "/grafana/api/datasources/uid/scgw-influxdb"),
    ("PUT", "/grafana/api/datasources/uid/scgw-influxdb"),
    ("GET", "/grafana/api/folders/scgw"),
    ("POST", "/grafana/api/dashboards/db"),
    *[call for uid in RULES for call in (
        ("GET", f"/grafana/api/v1/provisioning/alert-rules/{uid}"),
        ("PUT", f"/grafana/api/v1/provisioning/alert-rules/{uid}"))],
]


async def provision(url: str, *options: str, token: str = TOKEN,
                    env: dict[str, str | None] | None = None) -> Result:
    """The command in a thread: the fake Grafana answers on this test's event loop."""
    args = ["grafana", "provision", "--url", url, "--token", token, *options]
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


def bodies(grafana: FakeGrafana, method: str, path_end: str) -> list[Any]:
    return [c.body for c in grafana.calls if c.method == method and c.path.endswith(path_end)]


async def test_first_run_creates_data_source_folder_dashboard_and_rules() -> None:
    async with serving(FakeGrafana(TOKEN)) as grafana:
        result = await provision(grafana.url, "--datasource-url", "http://influx.lan:8086",
                                 "--database", "c1")
    assert result.exit_code == 0, result.output
    assert [(c.method, c.path) for c in grafana.calls] == FIRST_RUN
    assert {c.authorization for c in grafana.calls} == {f"Bearer {TOKEN}"}

    (datasource,) = bodies(grafana, "POST", "/datasources")
    checked = DataSource.model_validate(datasource)
    assert (str(checked.url), checked.jsonData.dbName) == ("http://influx.lan:8086/", "c1")
    assert bodies(grafana, "POST", "/folders") == [{"title": FOLDER_TITLE, "uid": FOLDER_UID}]
    (saved,) = bodies(grafana, "POST", "/dashboards/db")
    assert (saved["folderUid"], saved["overwrite"]) == (FOLDER_UID, True)
    assert Dashboard.model_validate(saved["dashboard"]).uid == DASHBOARD_UID
    rules = [ApiAlertRule.model_validate(b) for b in bodies(grafana, "POST", "/alert-rules")]
    assert [(r.uid, r.folderUID) for r in rules] == [(uid, FOLDER_UID) for uid in RULES]

    assert "data source scgw-influxdb: created" in result.output
    assert "folder scgw: created" in result.output
    assert "dashboard scgw-alarms: saved (version 1)" in result.output
    assert "alert rule scgw-device-offline: created" in result.output


async def test_second_run_updates_in_place() -> None:
    async with serving(FakeGrafana(TOKEN)) as grafana:
        first = await provision(grafana.url)
        assert first.exit_code == 0, first.output
        calls_before = len(grafana.calls)
        second = await provision(grafana.url, "--database", "c2")
    assert second.exit_code == 0, second.output
    assert [(c.method, c.path) for c in grafana.calls[calls_before:]] == SECOND_RUN
    # one of each, the data source pointing at the new database
    assert list(grafana.datasources) == ["scgw-influxdb"]
    assert grafana.datasources["scgw-influxdb"]["jsonData"]["dbName"] == "c2"
    assert list(grafana.folders) == [FOLDER_UID]
    assert list(grafana.dashboards) == [DASHBOARD_UID]
    assert grafana.dashboards[DASHBOARD_UID]["version"] == 2
    assert sorted(grafana.rules) == RULES
    for body in bodies(grafana, "PUT", "/alert-rules/" + RULES[0]):
        ApiAlertRule.model_validate(body)
    assert "data source scgw-influxdb: updated" in second.output
    assert "folder scgw: exists" in second.output
    assert "alert rule scgw-critical-unacknowledged: updated" in second.output


async def test_datasource_password_comes_from_the_environment() -> None:
    options = ("--datasource-user", "grafana", "--datasource-password-env", "INFLUX_PW")
    async with serving(FakeGrafana(TOKEN)) as grafana:
        result = await provision(grafana.url, *options, env={"INFLUX_PW": "s3cret"})
        unset = await provision(grafana.url, *options, env={"INFLUX_PW": None})
    assert result.exit_code == 0, result.output
    (datasource,) = bodies(grafana, "POST", "/datasources")
    assert DataSource.model_validate(datasource).secureJsonData == {"password": "s3cret"}
    assert unset.exit_code == 2
    assert "INFLUX_PW is not set" in unset.output


async def test_a_wrong_token_is_named_and_stops_the_run() -> None:
    async with serving(FakeGrafana(TOKEN)) as grafana:
        result = await provision(grafana.url, token="glsa_wrong")
    assert result.exit_code == 1
    assert f"Grafana at {grafana.url} refused the token (401 Unauthorized)" in result.output
    assert "--token" in result.output
    assert len(grafana.calls) == 1
    assert grafana.datasources == {}


async def test_a_token_without_admin_rights_is_named() -> None:
    async with serving(FakeGrafana(TOKEN, forbid=True)) as grafana:
        result = await provision(grafana.url)
    assert result.exit_code == 1
    assert "(403 Forbidden)" in result.output
    assert "needs the Admin role" in result.output


async def test_no_grafana_at_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await provision(url)
    assert result.exit_code == 1
    assert f"cannot reach Grafana at {url}" in result.output
    assert "is Grafana running and is --url right" in result.output


def test_without_grafana_client_the_command_says_how_to_install_it() -> None:
    # a process of its own, with the library made unimportable
    script = ("import sys; sys.modules['grafana_client'] = None; "
              "from gateway.ops.cli import app; app()")
    result = subprocess.run(
        [sys.executable, "-c", script, "grafana", "provision", "--url", "http://127.0.0.1:9",
         "--token", TOKEN], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "scgw grafana provision needs grafana-client: install it into the gateway's virtualenv "
        "(pip install grafana-client, or the package's [grafana] extra)"]


def test_without_the_foundation_sdk_export_says_how_to_install_it(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['grafana_foundation_sdk'] = None; "
              "from gateway.ops.cli import app; app()")
    result = subprocess.run(
        [sys.executable, "-c", script, "grafana", "export", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "the dashboard is built with grafana-foundation-sdk: install it into the gateway's "
        "virtualenv (the package's [grafana] extra)"]
    assert list(tmp_path.iterdir()) == []
