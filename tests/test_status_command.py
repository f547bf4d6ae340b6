"""`scgw status` shows rejected input per device and reason, device status and backlog."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.ops.private_servers import Mosquitto
from gateway.status_report import intake_words, read_status, status_path
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, running, unique_site


async def test_status_lists_rejections_per_device_and_reason(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    site = unique_site("st")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f"""
site = "{site}"
shutdown_timeout_s = 0.5
pseudonym_key_env = "SCGW_TEST_STATUS_KEY"
[broker]
port = {mosquitto.port}
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
status_path = "run/status.json"
[[devices]]
id = "smoke-1"
kind = "smoke"
transport = "mqtt"
profile = "zigbee-smoke"
mqtt = {{ topic = "z2m/{site}/smoke-1" }}
[[devices]]
id = "smoke-2"
kind = "smoke"
transport = "mqtt"
profile = "zigbee-smoke"
mqtt = {{ topic = "z2m/{site}/smoke-2" }}
""")
    from gateway.config_file import load_config

    # the gateway has its pseudonym key; the shell that asks for its status need not
    monkeypatch.setenv("SCGW_TEST_STATUS_KEY", "k" * 32)
    shell = {name: value for name, value in os.environ.items()
             if name != "SCGW_TEST_STATUS_KEY"}
    config = load_config(config_file)
    async with running(Gateway(config)) as gateway, Watcher(
        mosquitto.port, f"sc/{site}/#", "w"
    ) as watcher:
        await eventually(lambda: gateway.connected, what="connected")
        for _ in range(2):
            await watcher.publish(f"z2m/{site}/smoke-1", b"{oops")
        await watcher.publish(f"z2m/{site}/smoke-1", b'{"battery": 250}')  # out of range
        await watcher.publish(f"z2m/{site}/smoke-2", b'{"battery": 90, "smoke": false}')
        await eventually(lambda: gateway.counters.get("ingress_messages", device="smoke-2") == 1,
                         what="smoke-2 served")
        path = status_path(config.journal)

        def written() -> bool:
            return path.exists() and read_status(path).counters.get(
                "rejected{device=smoke-1,reason=out_of_range}") == 1

        await eventually(written, timeout=10, what="status file with the rejections")
        # where the configuration put it (relative to the file), not beside the journal
        assert path == tmp_path / "run" / "status.json"
        assert not (tmp_path / "status.json").exists()
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gateway.ops.cli", "status", "--config",
                             str(config_file)], capture_output=True, text=True, timeout=60,
            env=shell)
    assert result.returncode == 0, result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines()
             if line.count("│") >= 5}
    assert "malformed_json: 2" in lines["smoke-1"]
    assert "out_of_range: 1" in lines["smoke-1"]
    assert "online" in lines["smoke-2"]
    assert lines["smoke-2"].rstrip("│ ").endswith("-")


def test_the_intake_is_said_in_words() -> None:
    assert intake_words({"devices": {"messages": 0, "bytes": 0, "oldest_s": 0.0}}) == (
        "intake: keeping up")
    assert intake_words({"bulk": {"messages": 3, "bytes": 10, "oldest_s": 0.2}}) == (
        "intake: keeping up")  # a moment's work is not being behind
    assert intake_words({"devices": {"messages": 0, "bytes": 0, "oldest_s": 0.0},
                         "readings": {"messages": 12345, "bytes": 0, "oldest_s": 4.25}}) == (
        "intake: readings behind by 12,345 message(s) / 4.2 s")


def test_a_session_behind_with_the_backlog_in_the_broker_is_said_so() -> None:
    assert intake_words({"bulk": {"messages": 0, "bytes": 0, "oldest_s": 3.0}}) == (
        "intake: bulk behind by 3.0 s (the broker holds the messages)")
