"""SIGKILL while a `for` timer runs and while an escalation waits between steps: after the
restart the alert fires at the original deadline and the escalation goes on without
repeating a delivered step."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiomqtt
import msgspec

from gateway.core.model import Alert, AlertState, Reading
from gateway.ops.private_servers import Mosquitto
from tests.helpers import Watcher, eventually, unique_site
from tests.webhook import webhook

ESCALATIONS = """
escalations:
  quick:
    steps:
      - {after: 0s, notify: family}
      - {after: 3s, notify: duty_office}
      - {after: 6s, notify: clinic}
"""
RULES = """
rules:
  - id: elder.sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "Elder SOS: {device}"
    escalation: quick
  - id: manhole.tilt
    match: {kind: manhole, type: reading}
    condition: {field: tilt_deg, above: 10}
    for: 3s
    clear: {field: tilt_deg, below: 5}
    severity: major
    message: "Manhole {device} tilted {value} degrees"
"""


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_timers_and_escalation_survive_sigkill(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    site = unique_site("crash-rules")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "escalations.yaml").write_text(ESCALATIONS)
    (rules / "rules.yaml").write_text(RULES)
    async with webhook() as hook:
        (tmp_path / "contacts.yaml").write_text(f"""
groups:
  duty_office: ["{hook.url('duty-office')}"]
  clinic: ["{hook.url('clinic')}"]
devices:
  sos-1:
    family: ["{hook.url('family')}"]
""")
        config = tmp_path / "gateway.toml"
        config.write_text(f"""
site = "{site}"
rule_files = ["rules"]
shutdown_timeout_s = 1
contacts_file = "contacts.yaml"
[broker]
port = {mosquitto.port}
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
profile = "zigbee-sos-button"
mqtt = {{ topic = "z2m/{site}/sos-1" }}
[[devices]]
id = "manhole-1"
kind = "manhole"
transport = "mqtt"
profile = "nbiot-manhole"
mqtt = {{ topic = "nbiot/{site}/manhole-1" }}
""")
        async with Watcher(mosquitto.port, f"sc/{site}/#", "observer") as watcher, \
                aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"dev-{site}") as dev:
            proc = await _start(config)
            try:
                await watcher.next(lambda s: s.topic.endswith("gateway/status")
                                   and s.payload == b"online", timeout=20)
                await dev.publish(f"nbiot/{site}/manhole-1", b'{"data": {"tilt": 350}}', qos=1)
                tilt = msgspec.json.decode((await watcher.next(
                    lambda s: s.topic.endswith("manhole-1/telemetry"))).payload, type=Reading)
                await dev.publish(f"z2m/{site}/sos-1", b'{"action": "single"}', qos=1)
                pressed = time.time()
                await asyncio.wait_for(hook.arrived.wait(), 10)
                assert hook.paths() == ["family"]
                await asyncio.sleep(0.5)  # inside the 3 s `for` and the 3 s escalation wait
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                killed = time.time()
                proc = await _start(config)

                fired = await watcher.next(
                    lambda s: "/alerts/manhole.tilt/" in s.topic
                    and msgspec.json.decode(s.payload, type=Alert).state is AlertState.FIRING,
                    timeout=20)
                alert = msgspec.json.decode(fired.payload, type=Alert)
                # the original deadline: the reading's time + 3 s, not the restart's
                assert alert.since == tilt.ts + 3000
                assert alert.ts == tilt.ts + 3000
                await eventually(lambda: len(hook.received) >= 3, timeout=20,
                                 what="duty office and clinic")
                await asyncio.sleep(1.0)  # a repeated step would arrive now
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 20)
    assert killed - pressed < 3  # the kill fell between the first and second steps
    # each step exactly once; steps due together after a long restart go to their targets
    # side by side, so only the first is sure to arrive first
    assert hook.paths()[0] == "family"
    assert sorted(hook.paths()) == ["clinic", "duty-office", "family"]
    arrived = {path: at for path, _, at in hook.received}
    assert arrived["duty-office"] - pressed >= 2.9
    assert arrived["clinic"] - pressed >= 5.9
