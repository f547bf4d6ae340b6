"""`scgw alerts ack`: only a firing alert is acknowledged; a missing broker is one clear line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import msgspec

from gateway.config_file import load_config
from gateway.core.model import AckCommand, Alert, AlertState, DeviceKind, Severity, encode
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, running, unique_site


def _config(tmp_path: Path, site: str, port: int, login: str = "") -> Path:
    file = tmp_path / "gateway.toml"
    file.write_text(f"""
site = "{site}"
shutdown_timeout_s = 0.5
[broker]
port = {port}
{login}
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
mqtt = {{ topic = "z2m/{site}/sos-1", event_key = "action", events = {{ single = "press" }} }}
""")
    return file


async def _ack(config: Path, rule: str, device: str, env: dict[str, str] | None = None,
               timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gateway.ops.cli", "alerts", "ack", rule, device,
                         "--by", "officer-7", "--config", str(config), "--timeout", str(timeout)],
        capture_output=True, text=True, timeout=60, env=os.environ | (env or {}))


class _AclBroker(Mosquitto):
    """A broker with logins and an ACL file."""

    def __init__(self, workdir: Path, passwords: dict[str, str], acl: str) -> None:
        super().__init__(workdir, passwords=passwords)
        self.acl = acl

    def command(self) -> list[str]:
        command = super().command()
        acl_file = self.workdir / "acl"
        acl_file.write_text(self.acl)
        with (self.workdir / "mosquitto.conf").open("a") as conf:
            conf.write(f"acl_file {acl_file}\n")
        return command


async def test_a_login_that_may_not_read_the_alerts_is_named(tmp_path: Path) -> None:
    # Mosquitto grants the subscription and then delivers nothing: the gateway's retained
    # status never comes, as if no gateway had connected
    broker = _AclBroker(tmp_path / "broker", {"console": "pw-console"},
                        "user console\ntopic write sc/+/alerts/+/+/ack\n")
    broker.start()
    try:
        site = unique_site("ackacl")
        config = _config(tmp_path, site, broker.port,
                         'username = "console"\npassword_env = "SCGW_TEST_ACK_PASSWORD"')
        result = await _ack(config, "elder.sos", "sos-1", {"SCGW_TEST_ACK_PASSWORD": "pw-console"},
                            timeout=1)
    finally:
        broker.stop()
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line == (f"no gateway of site {site} has connected to the broker at "
                    f"127.0.0.1:{broker.port}, or user console may not read its topics: "
                    "nothing sent"), line


async def test_broker_down_is_one_line_naming_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = _config(tmp_path, unique_site("ackdown"), mosquitto.port)
    mosquitto.stop()
    result = await _ack(config, "elder.sos", "sos-1")
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"the broker at 127.0.0.1:{mosquitto.port} refused the connection "
                           "or is unreachable: connection refused"), line


async def test_only_a_firing_alert_is_acknowledged(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("ack")
    config_file = _config(tmp_path, site, mosquitto.port)
    alert_topic = f"sc/{site}/alerts/elder.sos/sos-1"
    async with running(Gateway(load_config(config_file))) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/#", "office") as office:
        await eventually(lambda: gateway.connected, what="connected")
        await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                         what="gateway status published")

        unknown = await _ack(config_file, "elder.sos", "no-such-device")
        assert unknown.returncode == 1, unknown.stdout
        assert "no active alert elder.sos on no-such-device" in unknown.stderr
        assert unknown.stdout == ""

        await office.publish(f"z2m/{site}/sos-1", b'{"action": "single"}')
        await office.next(lambda s: s.topic == alert_topic)
        acked = await _ack(config_file, "elder.sos", "sos-1")
        assert acked.returncode == 0, acked.stderr
        assert acked.stdout.strip() == "acknowledged elder.sos on sos-1 as officer-7"
        state = msgspec.json.decode((await office.next(
            lambda s: s.topic == alert_topic and b"acknowledged" in s.payload)).payload,
            type=Alert)
        assert (state.state, state.by) == (AlertState.ACKNOWLEDGED, "officer-7")

        again = await _ack(config_file, "elder.sos", "sos-1")
        assert again.returncode == 0, again.stderr
        assert "already acknowledged by officer-7: nothing sent" in again.stdout
        batch = await gateway.journal.read_after(0, 1000)
        journalled = [e.record for e in batch.entries if isinstance(e.record, AckCommand)]
    assert len(journalled) == 1  # neither the unknown alert's ack nor the second one was sent


async def test_offline_or_silent_gateway_from_retained_state(tmp_path: Path,
                                                             mosquitto: Mosquitto) -> None:
    site = unique_site("ackret")
    config = _config(tmp_path, site, mosquitto.port)
    alert_topic = f"sc/{site}/alerts/elder.sos/sos-1"
    firing = Alert(id="a1", ts=1, rule="elder.sos", device="sos-1", kind=DeviceKind.ELDER_BUTTON,
                   state=AlertState.FIRING, severity=Severity.CRITICAL, since=1, message="SOS")
    async with Watcher(mosquitto.port, f"{alert_topic}/ack", "office") as office:
        assert office.client is not None
        await office.client.publish(alert_topic, encode(firing), qos=1, retain=True)
        await office.client.publish(f"sc/{site}/gateway/status", b"offline", qos=1, retain=True)
        queued = await _ack(config, "elder.sos", "sos-1")
        assert queued.returncode == 0, queued.stderr
        assert "the gateway is offline and applies it when it reconnects" in queued.stdout
        assert (await office.next(lambda s: True)).payload == b'{"by":"officer-7"}'

        # a status that says online, but nobody answers
        await office.client.publish(f"sc/{site}/gateway/status", b"online", qos=1, retain=True)
        silent = await _ack(config, "elder.sos", "sos-1", timeout=1)
        assert silent.returncode == 1
        assert "the gateway did not confirm it within 1 s" in silent.stderr
        assert (await office.next(lambda s: True)).payload == b'{"by":"officer-7"}'
