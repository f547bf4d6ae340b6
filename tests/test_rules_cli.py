"""`scgw rules check|test|reload` and `scgw alerts list|ack` as an operator uses them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.services import Mosquitto
from gateway.status_report import read_status
from tests.helpers import Watcher, eventually, unique_site
from tests.rules.test_loader import FIVE_MISTAKES

SAMPLES = Path(__file__).parent.parent / "rules" / "samples"
PACKS = Path(__file__).parent.parent / "rules" / "packs"


def _scgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_rules_check_reports_five_mistakes_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(FIVE_MISTAKES)
    result = _scgw("rules", "check", str(tmp_path))
    assert result.returncode == 2
    assert "5 problem(s) in the rules" in result.stderr
    for line, rule in ((4, "tilt.typo"), (8, "smoke.types"), (14, "door.placeholder"),
                       (16, "elder.event"), (22, "gate.duration")):
        assert f"broken.yaml:{line}: rule {rule}: " in result.stderr
    assert _scgw("rules", "check", str(PACKS)).returncode == 0


@pytest.mark.parametrize("sample", sorted(p.stem for p in SAMPLES.glob("*.jsonl")))
def test_rules_test_prints_the_expected_transitions(sample: str) -> None:
    result = _scgw("rules", "test", str(PACKS), "--events", str(SAMPLES / f"{sample}.jsonl"),
                   "--contacts", str(SAMPLES / "contacts.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (SAMPLES / f"{sample}.out").read_text()
    again = _scgw("rules", "test", str(PACKS), "--events", str(SAMPLES / f"{sample}.jsonl"),
                  "--contacts", str(SAMPLES / "contacts.yaml"), "--restarts")
    assert again.stdout == result.stdout  # a restart before every line changes nothing


async def test_reload_keeps_old_rules_when_new_ones_are_invalid(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("reload")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sos.yaml").write_text("""
rules:
  - id: elder.sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "Elder SOS: {device}"
""")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
site = "{site}"
rule_files = ["rules"]
shutdown_timeout_s = 1
[broker]
port = {mosquitto.port}
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
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with Watcher(mosquitto.port, f"sc/{site}/#", "w") as watcher:
            await watcher.next(lambda s: s.payload == b"online", timeout=20)
            status = tmp_path / "status.json"
            await eventually(status.exists, what="status file")
            (rules / "sos.yaml").write_text(FIVE_MISTAKES)  # a broken edit
            reload = await asyncio.to_thread(_scgw, "rules", "reload", "--config", str(config))
            assert reload.returncode == 2  # refused before it reached the gateway
            assert "5 problem(s) in the rules" in reload.stderr
            proc.send_signal(signal.SIGHUP)  # the gateway itself validates too
            await watcher.publish(f"z2m/{site}/sos-1", b'{"action": "single"}')
            fired = await watcher.next(lambda s: "/alerts/elder.sos/" in s.topic, timeout=20)
            assert b'"firing"' in fired.payload  # the old rules still run
            (rules / "sos.yaml").write_text("""
rules:
  - id: elder.sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "SOS (reloaded): {device}"
""")
            reload = await asyncio.to_thread(_scgw, "rules", "reload", "--config", str(config))
            assert reload.returncode == 0, reload.stderr

            def counted() -> bool:
                counters = read_status(status).counters
                return counters.get("rule_reloads{result=applied}", 0) >= 1

            await eventually(counted, timeout=10, what="reload applied")
            listed = await asyncio.to_thread(_scgw, "alerts", "list", "--config", str(config))
            assert "elder.sos" in listed.stdout
            assert "sos-1" in listed.stdout
            acked = await asyncio.to_thread(_scgw, "alerts", "ack", "elder.sos", "sos-1",
                                            "--by", "night-shift", "--config", str(config))
            assert acked.returncode == 0, acked.stderr
            ack = await watcher.next(lambda s: "/alerts/elder.sos/" in s.topic
                                     and b'"acknowledged"' in s.payload)
            assert b"night-shift" in ack.payload
            assert read_status(status).counters.get("rule_reloads{result=rejected}") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert "rules not reloaded, the running rules stay" in stderr
