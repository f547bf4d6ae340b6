"""`scgw devices hikvision setup`: the alarm server set over ISAPI with digest, read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.hikvision.setup import SetupError, apply, setup_request
from gateway.core.config import HikvisionDevice
from gateway.ops.cli import app
from simulators.hikvision_isapi import IsapiTerminal
from tests.helpers import make_config


def _terminal(tmp_path: Path, port: int) -> HikvisionDevice:
    config = make_config(tmp_path, site="hs", http={"host": "192.168.1.10", "port": 8080},
                         devices=[{"id": "door-7-1", "kind": "access",
                                   "transport": "hikvision",
                                   "hikvision": {"username": "alarmserver",
                                                 "password": "door-push-pass",
                                                 "addresses": ["127.0.0.1"], "port": port}}])
    device = config.devices[0]
    assert isinstance(device, HikvisionDevice)
    return device


async def test_the_alarm_server_is_set_and_read_back(tmp_path: Path) -> None:
    async with IsapiTerminal() as isapi:
        request = setup_request(_terminal(tmp_path, isapi.port), "192.168.1.10", 8080)
        entry = await apply(request, "admin", "hik-admin-12345")
        assert isapi.puts == 1
        assert isapi.hosts == [entry]
        assert (entry["url"], entry["ipAddress"], entry["portNo"],
                entry["parameterFormatType"], entry["httpAuthenticationMethod"],
                entry["userName"]) == ("/hikvision/door-7-1", "192.168.1.10", 8080, "JSON",
                                       "MD5digest", "alarmserver")
        assert isapi.passwords == {"1": "door-push-pass"}


async def test_a_refused_administrator_is_named(tmp_path: Path) -> None:
    async with IsapiTerminal() as isapi:
        request = setup_request(_terminal(tmp_path, isapi.port), "192.168.1.10", 8080)
        with pytest.raises(SetupError, match="administrator user name or password"):
            await apply(request, "admin", "wrong-password")
        assert isapi.puts == 0


def test_dry_run_prints_the_request_and_masks_the_password(tmp_path: Path) -> None:
    file = tmp_path / "gateway.toml"
    file.write_text(f"""\
site = "hs"
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path}/journal.db"
[http]
host = "192.168.1.10"
port = 8080
[[devices]]
id = "door-7-1"
kind = "access"
transport = "hikvision"
[devices.hikvision]
username = "alarmserver"
password = "door-push-pass"
addresses = ["192.168.1.64"]
""")
    result = CliRunner().invoke(app, ["devices", "hikvision", "setup", "door-7-1",
                                      "--config", str(file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "PUT http://192.168.1.64:80/ISAPI/Event/notification/httpHosts?format=json")
    assert '"url": "/hikvision/door-7-1"' in result.output
    assert "door-push-pass" not in result.output
    assert '"password": "********"' in result.output
