"""`scgw rules check|test|reload` and `scgw alerts list|ack` as an operator uses them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.ops.private_servers import Mosquitto
from gateway.status_report import read_status
from tests.helpers import Watcher, eventually, unique_site
from tests.rules.test_file_limits import LAUGHS
from tests.rules.test_loader import FIVE_MISTAKES

SAMPLES = Path(__file__).parent.parent / "rules" / "samples"
PACKS = Path(__file__).parent.parent / "rules" / "packs"


def _scgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.ops.cli", *args], capture_output=True,
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


SOS_RULE = """
rules:
  - id: elder.sos
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "Elder SOS: {device}"
"""
LOOP = "rules: &x [*x]\n"
DEEP_NOT = SOS_RULE.replace("id: elder.sos", "id: deep").replace(
    "severity:", "condition: \"" + "not " * 200 + "true\"\n    severity:")


def test_rules_check_refuses_pathological_files_quickly(tmp_path: Path) -> None:
    for name, text in (("laughs", LAUGHS), ("loop", LOOP), ("deep", DEEP_NOT),
                       ("wide", SOS_RULE.replace("{device}", "{device:>10000000}"))):
        (tmp_path / f"{name}.yaml").write_text(text)
    result = _scgw("rules", "check", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "4 problem(s) in the rules" in result.stderr
    for where in ("deep.yaml:6: rule deep: the expression nests operators deeper than 32",
                  "laughs.yaml:7: more than 50 aliases", "loop.yaml:1: the alias *x is inside",
                  "wide.yaml:7: rule elder.sos: placeholder {device:>10000000}: the width"):
        assert where in result.stderr


def _gateway_config(tmp_path: Path, site: str, port: int) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sos.yaml").write_text(SOS_RULE)
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
site = "{site}"
rule_files = ["rules"]
shutdown_timeout_s = 1
[broker]
port = {port}
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
    return config


async def test_reload_keeps_old_rules_when_new_ones_are_invalid(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("reload")
    config = _gateway_config(tmp_path, site, mosquitto.port)
    rules = tmp_path / "rules"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config),
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


async def test_a_sighup_reload_of_pathological_files_is_refused_and_counted(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("hup")
    config = _gateway_config(tmp_path, site, mosquitto.port)
    rules = tmp_path / "rules"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with Watcher(mosquitto.port, f"sc/{site}/#", "w") as watcher:
            await watcher.next(lambda s: s.payload == b"online", timeout=20)
            status = tmp_path / "status.json"
            await eventually(status.exists, what="status file")
            for name, text in (("laughs", LAUGHS), ("loop", LOOP), ("deep", DEEP_NOT)):
                (rules / f"{name}.yaml").write_text(text)
            proc.send_signal(signal.SIGHUP)

            def rejected() -> bool:
                counters = read_status(status).counters
                return counters.get("rule_reloads{result=rejected}", 0) >= 1

            await eventually(rejected, timeout=15, what="reload rejected")
            await watcher.publish(f"z2m/{site}/sos-1", b'{"action": "single"}')
            fired = await watcher.next(lambda s: "/alerts/elder.sos/" in s.topic, timeout=20)
            assert b'"firing"' in fired.payload  # the old rules still run
            assert read_status(status).counters.get("rule_reloads{result=rejected}") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert stderr.count("rules not reloaded, the running rules stay") == 1
    assert "Traceback" not in stderr
    assert "Task exception was never retrieved" not in stderr
