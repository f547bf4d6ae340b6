"""An outside platform down, then back, and the gateway SIGKILLed while it drains the
backlog: every record reaches the platform, in order per device, copies only of a batch in
flight and with the same id; the local bus and the other platform are not held back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from gateway.core.model import DeviceEvent, DeviceKind
from gateway.ops.private_servers import Mosquitto
from tests.faults.oracle import Observer, mqtt_copies
from tests.helpers import Watcher, eventually, unique_site
from tests.pki import localhost_pki
from tests.upstreams.receivers import Subscriber, signed_webhook

SECRET = "district-webhook-secret-for-the-outage"
DEVICES = ("smoke-1", "smoke-2", "smoke-3")
EVENTS = 45
BATCH = 5  # the upstream's batch: the documented bound of copies per kill
POLICY = """\
rules:
  - id: smoke
    select: {records: [event], kind: [smoke], type: [alarm, alarm_cleared]}
    fields: [ts, kind, type, device]
"""


@pytest.fixture(scope="module")
def platform_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return localhost_pki(tmp_path_factory.mktemp("platform-ca"), "platform test CA")


@pytest.fixture
def platform_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "platform-broker")
    broker.start()
    yield broker
    broker.stop()


def _config(tmp_path: Path, site: str, local: int, platform: int, url: str, ca: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY)
    devices = "".join(f"""
[[devices]]
id = "{d}"
kind = "smoke"
transport = "mqtt"
[devices.mqtt]
topic = "vendor/{site}/{d}"
event_key = "state"
events = {{ alarm = "alarm", clear = "alarm_cleared" }}
""" for d in DEVICES)
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
site = "{site}"
shutdown_timeout_s = 2
[broker]
port = {local}
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[store]
url = "http://127.0.0.1:9"
retry_min_s = 0.5
retry_max_s = 1.0
[journal]
path = "{tmp_path / 'journal.db'}"
{devices}
[[upstreams]]
name = "district"
kind = "webhook"
policy = "policy.yaml"
url = "{url}"
ca_file = "{ca}"
secret_env = "SCGW_TEST_OUTAGE_SECRET"
batch = {BATCH}
retry_min_s = 0.05
retry_max_s = 0.2

[[upstreams]]
name = "city"
kind = "mqtt"
policy = "policy.yaml"
host = "127.0.0.1"
port = {platform}
tls = false
batch = {BATCH}
retry_min_s = 0.05
retry_max_s = 0.2
""")
    return path


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config), "--log-level",
        "warning", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "SCGW_TEST_OUTAGE_SECRET": SECRET})


async def test_platform_down_then_back_with_the_gateway_killed_while_it_drains(
        tmp_path: Path, mosquitto: Mosquitto, platform_broker: Mosquitto,
        platform_pki: dict[str, Path]) -> None:
    site = unique_site("upstream-outage")
    async with signed_webhook(SECRET.encode(), platform_pki["cert"],
                              platform_pki["key"]) as district, \
            Subscriber(platform_broker.port) as city, \
            Observer(mosquitto.port, site, persistent=False) as local, \
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="outage-source") as source:
        config = _config(tmp_path, site, mosquitto.port, platform_broker.port, district.url,
                         platform_pki["ca"])
        district.down = True  # the district's platform is down from the start
        proc = await _start(config)
        async with Watcher(mosquitto.port, f"sc/{site}/gateway/status", "status") as status:
            await status.next(lambda s: s.payload == b"online", timeout=20)
        sent_at: dict[tuple[str, int], float] = {}
        for n in range(EVENTS):
            device = DEVICES[n % 3]
            state = ("alarm", "clear")[(n // 3) % 2]
            sent_at[(device, n // 3)] = time.monotonic()
            await source.publish(f"vendor/{site}/{device}", json.dumps({"state": state}),
                                 qos=1)
            await asyncio.sleep(0.02)
        # while the district is down: the local bus and the city get everything at once
        await eventually(lambda: len(local.events) >= EVENTS and len(city.records) >= EVENTS,
                         timeout=10, what="the local bus and the city served")
        # from the last publish until the local bus and the city had every record
        served_lag = time.monotonic() - max(sent_at.values())
        assert district.records == []
        # back, and slow: the gateway is killed in the middle of draining its backlog
        district.delay_s = 0.15
        district.down = False
        await eventually(lambda: len(district.records) >= 2 * BATCH, timeout=15,
                         what="the drain under way")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        taken_at_kill = len(district.records)
        assert taken_at_kill < EVENTS, "the kill came after the drain"
        district.delay_s = 0.0
        proc = await _start(config)
        try:
            await eventually(lambda: {r["id"] for r in district.records} >= {
                e.id for e in local.events}, timeout=20, what="the backlog delivered")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    accepted = [e for e in local.events if e.kind is DeviceKind.SMOKE]
    accepted = list({e.id: e for e in accepted}.values())
    assert len(accepted) == EVENTS
    seen = [DeviceEvent(id=r["id"], ts=r["ts"], kind=DeviceKind(r["kind"]), device=r["device"],
                        type=r["type"]) for r in district.records]
    copies = mqtt_copies(accepted, seen)
    print(f"[upstream outage + SIGKILL] accepted={len(accepted)} taken at the kill="
          f"{taken_at_kill} lost={copies.lost} same-id copies={copies.same_id} new ids="
          f"{copies.new_id} order violations={copies.order_violations} "
          f"local bus and city served {served_lag:.2f} s after the last publish")
    assert (copies.lost, copies.new_id, copies.order_violations) == (0, 0, 0)
    assert copies.same_id <= BATCH  # at most the batch in flight at the kill
    city_seen = [DeviceEvent(id=r["id"], ts=r["ts"], kind=DeviceKind(r["kind"]),
                             device=r["device"], type=r["type"]) for r in city.records]
    city_copies = mqtt_copies(accepted, city_seen)
    assert (city_copies.lost, city_copies.new_id, city_copies.order_violations) == (0, 0, 0)
    assert served_lag < 2.0  # measured: 0.03-0.07 s here
