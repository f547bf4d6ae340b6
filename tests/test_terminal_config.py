"""Hikvision and Dahua terminals in the configuration: problems named with their keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config_file import load_config
from gateway.core.config import DahuaDevice, HikvisionDevice
from gateway.core.problems import ConfigError

BASE = """
site = "c1"
[store]
url = "http://127.0.0.1:8428"
"""

HIKVISION = """
[[devices]]
id = "door-1"
kind = "{kind}"
transport = "hikvision"
[devices.hikvision]
username = "alarmserver"
password = "{password}"
addresses = [{addresses}]
"""

DAHUA = """
[[devices]]
id = "{id}"
kind = "access"
transport = "dahua"
dahua = {{ host = "192.168.1.108", username = "events", password = "x", {extra} }}
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def _hikvision(kind: str = "access", password: str = "push-password",
               addresses: str = '"192.168.1.64", "10.1.0.0/24"') -> str:
    return HIKVISION.format(kind=kind, password=password, addresses=addresses)


def test_terminals_load(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + "[http]\nhost = \"192.168.1.10\"\n" + _hikvision()
                    + DAHUA.format(id="door-2", extra="heartbeat_s = 10"))
    config = load_config(path)
    door, stream = config.devices
    assert isinstance(door, HikvisionDevice)
    assert isinstance(stream, DahuaDevice)
    assert [str(a) for a in door.hikvision.addresses] == ["192.168.1.64/32", "10.1.0.0/24"]
    assert (door.hikvision.auth, stream.dahua.heartbeat_s) == ("digest", 10)


def test_a_hikvision_terminal_needs_the_http_port_and_a_kind_it_has(tmp_path: Path) -> None:
    messages = _problems(tmp_path, BASE + _hikvision(kind="smoke"))
    assert any(m.startswith("devices[0].hikvision (device door-1): Hikvision terminals push "
                            "to the [http] port") for m in messages), messages
    assert any(m.startswith("devices[0].kind (device door-1): a Hikvision terminal is an "
                            "access or temp_gate device") for m in messages), messages


def test_bad_hikvision_settings_are_named(tmp_path: Path) -> None:
    messages = _problems(tmp_path, BASE + "[http]\n" + _hikvision(
        password="short", addresses='"not-an-address"'))
    assert any("devices[0].hikvision.password" in m for m in messages), messages
    assert any("devices[0].hikvision.addresses" in m for m in messages), messages


def test_dahua_terminals_are_checked(tmp_path: Path) -> None:
    messages = _problems(tmp_path, BASE
                         + DAHUA.format(id="d1", extra="reconnect_min_s = 5, "
                                        "reconnect_max_s = 1")
                         + DAHUA.format(id="d2", extra="port = 80"))
    assert any(m.startswith("devices[0].dahua.reconnect_max_s (device d1): must be >= "
                            "dahua.reconnect_min_s") for m in messages), messages
    assert any(m.startswith("devices[1].dahua.host (device d2): Dahua terminal") and
               "already used by device d1" in m for m in messages), messages
