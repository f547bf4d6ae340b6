"""`scgw sharing check`, `preview` and `report`; `scgw run` refusing a policy that would send
sensitive data in clear without a legal basis."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind, Severity, encode
from gateway.journal import Journal, SharedRow
from gateway.ops.cli import app

REPO = Path(__file__).resolve().parents[2]
FEVERS = """\
rules:
  - id: faults
    select: {records: [event], type: [fault]}
    fields: [ts, type]
  - id: fevers
    select: {records: [event], kind: [temp_gate]}
    fields: [ts, type, body_temp_c]
"""


def write_config(tmp_path: Path, policy: str, **extra: str) -> Path:
    (tmp_path / "policy.yaml").write_text(policy)
    lines = [f'{k} = "{v}"' for k, v in extra.items()]
    config = tmp_path / "gateway.toml"
    config.write_text(f"""\
site = "c1"
[store]
url = "http://127.0.0.1:9"
[journal]
path = "journal.db"
[[devices]]
id = "elder-3-1-502"
kind = "elder_button"
transport = "gpio"
location = {{building = "3", unit = "1", floor = 5}}
gpio = {{pin = 17}}
[[upstreams]]
name = "district"
kind = "webhook"
policy = "policy.yaml"
url = "https://127.0.0.1:9/x"
secret_env = "SCGW_TEST_WEBHOOK_SECRET"
{chr(10).join(lines)}
""")
    return config


def test_check_accepts_the_templates_and_refuses_temperatures_in_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["sharing", "check", str(REPO / "sharing")])
    assert ok.exit_code == 0, ok.output
    assert "district_elder_care.yaml: OK, 1 rule(s)" in ok.output
    assert "sos: personal data device (personal, pseudonym), rule (health, clear), state " \
           "(health, clear); basis vital_interest: PIPL" in ok.output
    (tmp_path / "health.yaml").write_text(FEVERS)
    refused = runner.invoke(app, ["sharing", "check", str(tmp_path)])
    assert refused.exit_code == 2
    assert f"{tmp_path / 'health.yaml'}:5: rule fevers: field 'body_temp_c' (health, " \
           "sensitive) would leave in clear" in " ".join(refused.output.split())


def test_run_refuses_a_policy_with_a_sensitive_field_in_clear(tmp_path: Path) -> None:
    config = write_config(tmp_path, FEVERS)
    env = {**os.environ, "SCGW_TEST_WEBHOOK_SECRET": "a-secret-of-16-bytes-or-more"}
    # `scgw run` as the console script runs it (gateway.ops.entry, without typer)
    result = subprocess.run([sys.executable, "-c", "from gateway.ops.entry import main; main()",
                             "run", "--config", str(config)], capture_output=True, text=True,
                            env=env, timeout=60, check=False, cwd=REPO)
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.split())
    assert f"{tmp_path / 'policy.yaml'}:5: rule fevers: field 'body_temp_c' (health, " \
           "sensitive) would leave in clear" in text
    assert not (tmp_path / "journal.db").exists()  # refused before it started


def test_preview_shows_exactly_what_would_leave(tmp_path: Path) -> None:
    config = write_config(tmp_path, (REPO / "sharing" / "district_elder_care.yaml").read_text(),
                          pseudonym_key_env="SCGW_TEST_DISTRICT_KEY")
    press = make_event(DeviceKind.ELDER_BUTTON, "elder-3-1-502", "press", 1_767_225_600_000)
    alert = Alert(id="a1", ts=1_767_225_600_100, rule="elder.sos", device="elder-3-1-502",
                  kind=DeviceKind.ELDER_BUTTON, state=AlertState.FIRING,
                  severity=Severity.CRITICAL, since=1_767_225_600_000, message="SOS")
    events = tmp_path / "stream.jsonl"
    events.write_text(f"# a recorded stream\n{encode(press).decode()}\n{encode(alert).decode()}\n")
    env = {"SCGW_TEST_DISTRICT_KEY": "district-key-of-16-bytes"}
    result = CliRunner().invoke(app, ["sharing", "preview", "--config", str(config),
                                      "--events", str(events), "--json"], env=env)
    assert result.exit_code == 0, result.output
    pseudonym = hmac.new(b"district-key-of-16-bytes", b"elder-3-1-502",
                         hashlib.sha256).hexdigest()[:32]
    assert json.loads(result.output) == {"district": [
        {"id": "a1:firing", "ts": 1_767_225_600_100, "rule": "elder.sos", "state": "firing",
         "since": 1_767_225_600_000, "building": "3", "device": pseudonym}]}


def test_preview_with_the_rules_shows_the_alerts_a_recorded_stream_raises(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, (REPO / "sharing" / "district_elder_care.yaml").read_text(),
                          pseudonym_key_env="SCGW_TEST_DISTRICT_KEY")
    result = CliRunner().invoke(app, [
        "sharing", "preview", "--config", str(config), "--events",
        str(REPO / "rules" / "samples" / "elder_sos.jsonl"), "--with-rules", "--json"],
        env={"SCGW_TEST_DISTRICT_KEY": "district-key-of-16-bytes"})
    assert result.exit_code == 0, result.output
    shared = json.loads(result.output)["district"]
    assert [(r["state"], r.get("building")) for r in shared] == [
        ("firing", "3"), ("acknowledged", "3"), ("resolved", "3"),
        ("firing", None), ("resolved", None)]  # elder-5-2-101 has no place configured
    assert "elder-" not in result.output
    assert "duty-office" not in result.output


async def test_report_lists_what_went_where(tmp_path: Path) -> None:
    config = write_config(tmp_path, FEVERS)
    async with Journal(tmp_path / "journal.db") as journal:
        now = int(time.time() * 1000)
        await journal.commit(cursor=("upstream:district", 0), durable=False, shared=[
            SharedRow("district", "r1", 1, "sos", "elder-3-1-502", "elder_button", "firing",
                      "id,state,device", "state:health:clear,device:personal:pseudonym",
                      "vital_interest: PIPL 13(4)", now),
            SharedRow("district", "r2", 2, "sos", "elder-5-2-101", "elder_button", "resolved",
                      "id,state,device", "state:health:clear,device:personal:pseudonym",
                      "vital_interest: PIPL 13(4)", now),
            SharedRow("city", "r3", 3, "confirmed-fire", "building-3", "any", "firing",
                      "id,state,building", "", "", now),
            SharedRow("city", "old", 0, "confirmed-fire", "building-3", "any", "firing",
                      "id", "", "", now - 40 * 86_400_000)])
    result = CliRunner().invoke(app, ["sharing", "report", "--config", str(config),
                                      "--since", "30d", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["upstreams"]
    assert report["city"]["records"] == 1
    assert report["district"]["records"] == 2
    assert report["district"]["personal_fields"] == {"state:health:clear": 2,
                                                     "device:personal:pseudonym": 2}
    assert report["district"]["bases"] == {"sos": "vital_interest: PIPL 13(4)"}
    mine = CliRunner().invoke(app, ["sharing", "report", "--config", str(config),
                                    "--device", "elder-5-2-101"])
    assert mine.exit_code == 0, mine.output
    assert "1 record(s) to 1 upstream(s)" in mine.output
    assert "district [sos] elder_button resolved: id,state,device; basis vital_interest" \
        in mine.output
