"""`scgw demo`: within 10 s an alarm is raised, acknowledged, and read back from the store."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest


def test_demo_shows_alarm_ack_and_store_points_within_ten_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.ops.cli", "demo", "--workdir", str(tmp_path / "demo"),
         "--duration", "11"],
        capture_output=True, text=True, timeout=90, check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    def at(pattern: str) -> float:
        found = re.search(r"\[\s*([\d.]+)s\] " + pattern, out)
        assert found, f"{pattern!r} not in demo output:\n{out}"
        return float(found.group(1))

    # every device of the compound is known online shortly after the start: polled ones
    # after their first answer, the others after the check-in their simulator sends at once
    config = tomllib.loads((tmp_path / "demo" / "gateway.toml").read_text())
    devices = {d["id"] for d in config["devices"]}
    assert len(devices) == 19
    online = {m.group(2): float(m.group(1)) for m in re.finditer(
        r"\[\s*([\d.]+)s\] device (\S+) is online", out)}
    assert set(online) == devices, out
    assert max(online.values()) < 3.0, out
    assert " is offline" not in out
    fired = at("ALERT elder.sos FIRING")
    acked = at("ALERT elder.sos ACKNOWLEDGED by duty-office")
    assert fired < acked < 10.0
    assert "Alert points read back from VictoriaMetrics with:" in out
    assert re.search(r"curl 'http://127\.0\.0\.1:\d+/api/v1/export\?match", out)
    table = out.split("Alert points read back")[1]
    assert re.search(r"elder-3-1-502\s*│\s*firing\s*│\s*1\s*│", table)
    assert re.search(r"elder-3-1-502\s*│\s*acknowledged\s*│\s*2\s*│", table)
    assert "Stopped everything the demo started." in out
    # the console: its address and a login made for this demo, its password printed once;
    # the simulated duty officer acknowledged on the console, with a note in the timeline
    login = re.search(r"console\s+http://127\.0\.0\.1:\d+/\s+login demo, password (\S+) "
                      r"\(made for this demo; shown once\)", out)
    assert login, out
    assert out.count(login.group(1)) == 1
    from gateway.console.report import read_records
    from gateway.core.config import JournalConfig

    [record] = [r for r in read_records(JournalConfig(path=tmp_path / "demo" / "journal.db"))
                if r.alert.device == "elder-3-1-502"]
    assert [(e.what, e.by, e.note) for e in record.entries if e.by == "duty-office"] == [
        ("acknowledged", "duty-office", None), ("ack_note", "duty-office", "on my way")]
    # the servers it started are gone: their ports refuse connections
    for port in re.findall(r"(?:mqtt|http)://127\.0\.0\.1:(\d+)", out)[:2]:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(port)), 1).close()
