"""The simulated compound shares with three outside platforms, each behind its policy: the
city (a remote broker with TLS and credentials), the property company (a remote broker) and
the district (an HTTPS webhook). Each receives exactly what its policy allows, field by
field; pseudonyms differ between platforms; nothing else leaves; the audit report matches
what the platforms received."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.config_file import load_config
from gateway.core.config import GatewayConfig
from gateway.core.model import Alert, DeviceEvent, Record
from gateway.journal import Journal
from gateway.ops.cli import app
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.hikvision_terminal import RESIDENT
from simulators.scenarios import SCENARIOS
from simulators.site import SimulatedSite
from tests.helpers import eventually, intake_open, running
from tests.upstreams.receivers import Subscriber, signed_webhook
from tests.upstreams.test_sharing_policy import TEMPLATES

CITY_USER = "compound-demo"
CITY_PASSWORD = "city-broker-password-for-tests"
KEYS = {"SCGW_TEST_CITY_KEY": "city-pseudonym-key-0001",
        "SCGW_TEST_DISTRICT_KEY": "district-pseudonym-key-0001",
        "SCGW_TEST_CITY_PASSWORD": CITY_PASSWORD,
        "SCGW_TEST_DISTRICT_SECRET": "district-webhook-secret-0001"}
# the city's platform also serves its emergency medical centre: SOS alerts, the elder as a
# pseudonym of the city's own key
CITY_SOS_RULE = """
  - id: emergency-medical-sos
    select: {records: [alert], kind: [elder_button], rule: [elder.sos], state: [firing]}
    fields: [ts, rule, state, building]
    pseudonymise: [device]
    basis: vital_interest
    reference: "PIPL art. 13(4); the city's emergency medical dispatch"
"""
SCENARIO_NAMES = ("elder-sos", "fire-building-3", "door-forced", "fever-at-gate")
ACKED_BY = "duty-officer-zhang"


@pytest.fixture
def city_broker(tmp_path: Path, platform_pki: dict[str, Path]) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "city-broker",
                       tls=(platform_pki["ca"], platform_pki["cert"], platform_pki["key"]),
                       passwords={CITY_USER: CITY_PASSWORD})
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def property_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "property-broker")
    broker.start()
    yield broker
    broker.stop()


def upstreams_toml(tmp_path: Path, city: int, property_: int, district: str, ca: Path) -> str:
    city_policy = tmp_path / "city.yaml"
    city_policy.write_text((TEMPLATES / "city_fire.yaml").read_text() + CITY_SOS_RULE)
    return f"""
[[upstreams]]
name = "city"
kind = "mqtt"
policy = "{city_policy}"
host = "localhost"
port = {city}
ca_file = "{ca}"
username = "{CITY_USER}"
password_env = "SCGW_TEST_CITY_PASSWORD"
pseudonym_key_env = "SCGW_TEST_CITY_KEY"
retry_min_s = 0.05
retry_max_s = 0.5

[[upstreams]]
name = "property"
kind = "mqtt"
policy = "{TEMPLATES / 'property_company.yaml'}"
host = "127.0.0.1"
port = {property_}
tls = false
topic = "compound/{{site}}/{{kind}}/{{device}}/{{type}}"
retry_min_s = 0.05
retry_max_s = 0.5

[[upstreams]]
name = "district"
kind = "webhook"
policy = "{TEMPLATES / 'district_elder_care.yaml'}"
url = "{district}"
ca_file = "{ca}"
secret_env = "SCGW_TEST_DISTRICT_SECRET"
pseudonym_key_env = "SCGW_TEST_DISTRICT_KEY"
retry_min_s = 0.05
retry_max_s = 0.5
"""


def pseudonym(key_env: str, value: str) -> str:
    return hmac.new(KEYS[key_env].encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def expected(config: GatewayConfig, records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """What each platform must receive, written out from the policies' text."""
    where = {d.id: d.location for d in config.devices}
    out: dict[str, list[dict[str, Any]]] = {"city": [], "property": [], "district": []}
    faults = {"fault", "fault_cleared", "tamper", "tamper_cleared", "low_battery",
              "battery_ok", "offline", "online"}
    for r in records:
        # an alert's id names the alert: each transition leaves as `{id}:{state}`
        key = f"{r.id}:{r.state}" if isinstance(r, Alert) else r.id
        if isinstance(r, Alert) and r.rule == "smoke.fire_confirmed":
            out["city"].append({"id": key, "ts": r.ts, "rule": r.rule, "state": r.state,
                                "severity": r.severity, "since": r.since,
                                "building": r.device.removeprefix("building-")})
        if isinstance(r, Alert) and r.rule == "elder.sos" and r.state == "firing":
            out["city"].append({"id": key, "ts": r.ts, "rule": r.rule, "state": r.state,
                                "building": where[r.device].building,
                                "device": pseudonym("SCGW_TEST_CITY_KEY", r.device)})
        if isinstance(r, DeviceEvent) and r.kind == "smoke" and r.type in (
                "fault", "fault_cleared", "shielded", "shielded_cleared", "offline", "online"):
            loc = where[r.device]
            out["city"].append({k: v for k, v in {
                "id": r.id, "ts": r.ts, "kind": r.kind, "type": r.type, "device": r.device,
                "building": loc.building, "floor": loc.floor}.items() if v is not None})
        if isinstance(r, DeviceEvent) and r.type in faults:
            loc = where[r.device]
            out["property"].append({k: v for k, v in {
                "id": r.id, "ts": r.ts, "kind": r.kind, "device": r.device, "type": r.type,
                "building": loc.building, "unit": loc.unit, "floor": loc.floor}.items()
                if v is not None})
        if isinstance(r, Alert) and (r.kind == "manhole" or r.rule in (
                "access.forced_open", "access.held_open")):
            loc = where[r.device]
            fields = {"id": key, "ts": r.ts, "rule": r.rule, "state": r.state,
                      "severity": r.severity, "since": r.since, "device": r.device,
                      "building": loc.building}
            if r.kind == "access":
                fields["unit"] = loc.unit
            out["property"].append({k: v for k, v in fields.items() if v is not None})
        if isinstance(r, Alert) and r.rule == "elder.sos":
            out["district"].append({"id": key, "ts": r.ts, "rule": r.rule, "state": r.state,
                                    "since": r.since, "building": where[r.device].building,
                                    "device": pseudonym("SCGW_TEST_DISTRICT_KEY", r.device)})
    return out


def id_of(record: Record) -> str:
    return f"{record.id}:{record.state}" if isinstance(record, Alert) else record.id


async def seqs(journal: Journal) -> dict[str, int]:
    """Each record's sequence number, by its delivery id."""
    out: dict[str, int] = {}
    upto = 0
    while True:
        batch = await journal.read_after(upto, 5000)
        if batch.upto <= upto:
            return out
        out.update((id_of(e.record), e.seq) for e in batch.entries)
        upto = batch.upto


def expected_upto(config: GatewayConfig, records: list[Record], by_seq: dict[str, int],
                  cursor: int) -> dict[str, list[dict[str, Any]]]:
    return expected(config, [r for r in records if by_seq[id_of(r)] <= cursor])


async def all_records(journal: Journal) -> list[Record]:
    out: list[Record] = []
    upto = 0
    while True:
        batch = await journal.read_after(upto, 5000)
        if batch.upto <= upto:
            return out
        out += [e.record for e in batch.entries]
        upto = batch.upto


async def test_each_platform_receives_exactly_what_its_policy_allows(
        tmp_path: Path, mosquitto: Mosquitto, city_broker: Mosquitto,
        property_broker: Mosquitto, platform_pki: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    ca = platform_pki["ca"]

    async def compressed(seconds: float) -> None:
        await asyncio.sleep(min(seconds * 0.2, 1.0))  # presses stay apart (no bounce)

    async with SimulatedSite(tmp_path / "site") as site, \
            signed_webhook(KEYS["SCGW_TEST_DISTRICT_SECRET"].encode(), platform_pki["cert"],
                           platform_pki["key"]) as district, \
            Subscriber(city_broker.port, ca=ca, username=CITY_USER,
                       password=CITY_PASSWORD) as city, \
            Subscriber(property_broker.port) as property_:
        config_file = tmp_path / "gateway.toml"
        config_file.write_text(
            site.config(mosquitto.port, "http://127.0.0.1:9", poll_s=1.0, alarm_poll_s=0.25)
            + upstreams_toml(tmp_path, city_broker.port, property_broker.port, district.url,
                             ca))
        config = load_config(config_file).model_copy(update={"shutdown_timeout_s": 0.3})
        async with running(Gateway(config)) as gateway:
            await intake_open(gateway)
            devices = await site.attach(config, gateway.pin_factory, gateway.clock)
            for name in SCENARIO_NAMES:
                await SCENARIOS[name].run(devices, compressed, lambda _: None)
            await eventually(lambda: any(a.rule == "elder.sos" and a.device == "elder-3-1-502"
                                         for a in gateway.rules.active()), what="the SOS")
            await gateway.ack("elder.sos", "elder-3-1-502", by=ACKED_BY)

            def delivered() -> bool:
                states = [r.get("state") for r in district.records]
                return (gateway.runner.idle and "acknowledged" in states
                        and len([r for r in city.records if r.get("rule")
                                 == "smoke.fire_confirmed"]) >= 1
                        and any(r.get("rule") == "access.forced_open"
                                for r in property_.records)
                        and all(u.cursor == gateway.journal.last_seq
                                for u in gateway.upstreams))

            await eventually(delivered, timeout=20, what="every platform served")
            await asyncio.sleep(0.3)  # a copy more would show by now
        got = {"city": city.records, "property": property_.records,
               "district": district.records}
    # the journal as the gateway left it: a device may still have gone offline meanwhile,
    # so each platform has everything up to its cursor, and may have had a batch more
    async with Journal(config.journal.path) as journal:
        records = await all_records(journal)
        cursors = {name: await journal.cursor(f"upstream:{name}") for name in got}
        by_seq = await seqs(journal)
    want = {k: json.loads(json.dumps(v)) for k, v in expected(config, records).items()}
    for name in got:
        done = expected_upto(config, records, by_seq, cursors[name])[name]
        assert got[name] == want[name][:len(got[name])], name  # field by field, in order
        assert len(got[name]) >= len(done), name
    assert {r["state"] for r in district.records} >= {"firing", "acknowledged", "resolved"}
    # the district's pseudonym of an elder is not the city's
    city_elders = {r["device"] for r in city.records if r.get("rule") == "elder.sos"}
    assert len(city_elders) == 2
    assert {r["device"] for r in district.records} & city_elders == set()
    assert pseudonym("SCGW_TEST_CITY_KEY", "elder-3-1-502") in city_elders
    assert district.refused == []
    # privacy oracle: the whole traffic of every platform, searched
    traffic = {"city": [m.topic.encode() + b" " + m.raw for m in city.received],
               "property": [m.topic.encode() + b" " + m.raw for m in property_.received],
               "district": [json.dumps(b).encode() for b in district.batches]}
    alerts = [r for r in records if isinstance(r, Alert)]
    card_pseudonyms = {str(r.fields["card"]) for r in records
                       if isinstance(r, DeviceEvent) and "card" in r.fields}
    forbidden = {
        "every": [RESIDENT.card_no, RESIDENT.name, RESIDENT.employee_no, ACKED_BY,
                  "body_temp_c", "37.8", "37.9", "message", *card_pseudonyms,
                  *{a.message for a in alerts if a.message}],
        "city": ["elder-3-1-502", "elder-5-2-101", "unit", "temp_gate", "access"],
        "district": ["elder-3-1-502", "elder-5-2-101", "floor", "unit", "press", "door",
                     "smoke"],
        "property": ["elder.sos", "press", "fever", "temp_gate"]}
    for name, messages in traffic.items():
        assert messages, name
        for text in forbidden["every"] + forbidden[name]:
            found = [m for m in messages if text.encode() in m]
            assert not found, f"{text!r} reached {name}: {found[:1]}"
    # the audit, as `scgw sharing report` prints it, counts what the platforms received
    result = CliRunner().invoke(app, ["sharing", "report", "--config", str(config_file),
                                      "--since", "1d", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["upstreams"]
    for name, received in got.items():
        confirmed = {r["id"] for r in received} & {r["id"] for r in want[name][:len(
            expected_upto(config, records, by_seq, cursors[name])[name])]}
        assert report[name]["records"] == len(confirmed), name
    assert report["district"]["personal_fields"]["device:personal:pseudonym"] == \
        len(district.records)
    assert report["district"]["bases"] == {"sos": "vital_interest: PIPL art. 13(4): to "
                                           "protect a person's life and health in an "
                                           "emergency; district elder-care service agreement"}
