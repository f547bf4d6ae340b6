"""Broker users and the ACL derived from a configuration (`scgw broker users|acl`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config_file import parse_config
from gateway.core.config import GatewayConfig
from gateway.ops.broker_acl import BrokerUsersError, Role, broker_users, notify_topics, render_acl


def _config(tmp_path: Path, **broker: Any) -> GatewayConfig:
    raw = {
        "site": "c7",
        "broker": {"username": "gateway", **broker},
        "store": {"url": "http://127.0.0.1:9"},
        "devices": [
            {"id": "sos-1", "kind": "elder_button", "transport": "mqtt",
             "mqtt": {"topic": "devices/sos-1"}},
            {"id": "elder-2", "kind": "elder_button", "transport": "gpio",
             "gpio": {"pin": 17}},
        ],
    }
    return parse_config(raw, tmp_path / "gateway.toml", {})


def test_each_user_gets_only_what_its_job_needs(tmp_path: Path) -> None:
    users = broker_users(_config(tmp_path), notify_topics=["sc/c7/notify/duty", "pager/duty"])
    assert [(u.role, u.name) for u in users] == [
        (Role.GATEWAY, "gateway"), (Role.CONSOLE, "duty-console"), (Role.DEVICE, "sos-1")]
    gateway, console, device = users
    assert gateway.readwrite == ("sc/c7/#",)
    assert gateway.read == ("devices/sos-1",)
    assert gateway.write == ("pager/duty",)  # a notification target outside sc/c7/
    assert console.read == ("sc/c7/#", "pager/duty")
    assert console.write == ("sc/c7/alerts/+/+/ack",)
    assert (device.read, device.write, device.readwrite) == ((), ("devices/sos-1",), ())
    acl = render_acl(users)
    assert acl.index("user gateway") < acl.index("user duty-console") < acl.index("user sos-1")
    # nothing before the first user: an anonymous client would be granted nothing
    assert all(line.startswith("#") or not line
               for line in acl[:acl.index("user gateway")].splitlines())


def test_a_zigbee2mqtt_device_may_write_its_availability_and_the_gateway_reads_it(
        tmp_path: Path) -> None:
    raw = {"site": "c7", "broker": {"username": "gateway"},
           "store": {"url": "http://127.0.0.1:9"},
           "devices": [
               {"id": "sos-2", "kind": "elder_button", "transport": "mqtt",
                "profile": "heiman-hs1eb", "mqtt": {"topic": "zigbee2mqtt/sos-2"}},
               {"id": "sos-3", "kind": "elder_button", "transport": "mqtt",
                "mqtt": {"topic": "bridge/sos-3", "availability_topic": "bridge/sos-3/up"}}]}
    gateway, _, sos_2, sos_3 = broker_users(parse_config(raw, tmp_path / "g.toml", {}))
    assert gateway.read == ("zigbee2mqtt/sos-2", "zigbee2mqtt/sos-2/availability",
                            "bridge/sos-3", "bridge/sos-3/up",
                            "bridge/bridge/devices", "bridge/bridge/state",
                            "zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/state")
    assert sos_2.write == ("zigbee2mqtt/sos-2", "zigbee2mqtt/sos-2/availability")
    assert sos_3.write == ("bridge/sos-3", "bridge/sos-3/up")


def test_the_mqtt_targets_of_a_contacts_file(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("groups:\n  duty_office: [\"mqtt://sc/c7/notify/duty\", "
                        "\"mailto://duty@example.org\"]\n"
                        "devices:\n  sos-1:\n    family: [\"mqtt://pager/family-1\"]\n")
    assert notify_topics(contacts) == ["pager/family-1", "sc/c7/notify/duty"]
    assert notify_topics(None) == []


def test_a_gateway_without_a_broker_login_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerUsersError, match=r"broker\.username is not set"):
        broker_users(_config(tmp_path, username=None))


def test_a_device_named_like_another_user_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerUsersError, match="'sos-1' has the name of the console user"):
        broker_users(_config(tmp_path), console_user="sos-1")
    with pytest.raises(BrokerUsersError, match="without spaces"):
        broker_users(_config(tmp_path), console_user="duty console")


def test_a_user_named_like_the_gateways_client_id_is_refused(tmp_path: Path) -> None:
    # on the LAN listener a client's id is its user name: it would push the gateway off
    with pytest.raises(BrokerUsersError, match="'sos-1' is the gateway's client id"):
        broker_users(_config(tmp_path, client_id="sos-1"))
    with pytest.raises(BrokerUsersError, match="'scgw-c7' is the gateway's client id"):
        broker_users(_config(tmp_path), console_user="scgw-c7")


def test_the_cli_lists_users_and_fails_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('site = "c7"\n[broker]\nusername = "gateway"\n'
                      '[store]\nurl = "http://127.0.0.1:9"\n')

    def scgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.ops.cli", "broker", *args,
                               "--config", str(config)], capture_output=True, text=True,
                              timeout=60, check=False, env=os.environ)

    listed = scgw("users")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "gateway\tgateway\nconsole\tduty-console\n"
    config.write_text('site = "c7"\n[store]\nurl = "http://127.0.0.1:9"\n')
    refused = scgw("acl")
    assert refused.returncode == 2
    assert "broker.username is not set" in refused.stderr
