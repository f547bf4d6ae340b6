"""A fire panel's transmission device reporting 30 detectors in alarm while the gateway is
SIGKILLed five times at random points: every alarm is confirmed, journalled exactly once
and published; what a kill left unconfirmed the device sends again, and what a kill left
journalled but unconfirmed is recognised."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections import Counter
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from simulators.gb26875_device import Delivery, TransmissionDevice
from tests.faults.oracle import Observer, accepted_alarms, judge, mqtt_copies
from tests.helpers import Watcher, eventually, unique_site

KILLS = 5
DETECTORS = 30
PANEL = 889


def _config(path: Path, site: str, broker: int, store: str, port: int) -> Path:
    detectors = "".join(f"""
[[devices]]
id = "smoke-{n:03d}"
kind = "smoke"
transport = "gb26875"
location = {{ building = "{n}" }}
gb26875 = {{ via = "fire-panel", component = "1-1-{n:03d}" }}
""" for n in range(1, DETECTORS + 1))
    path.write_text(f"""
site = "{site}"
shutdown_timeout_s = 10
[broker]
port = {broker}
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[store]
url = "{store}"
flush_interval_s = 0.2
retry_min_s = 0.1
retry_max_s = 0.5
[journal]
path = "{path.parent / 'journal.db'}"
[gb26875]
host = "127.0.0.1"
port = {port}
[[devices]]
id = "fire-panel"
kind = "smoke"
transport = "gb26875"
gb26875 = {{ address = {PANEL} }}
{detectors}""")
    return path


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config), "--log-level",
        "warning", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_fire_panel_alarms_through_five_gateway_kills(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-panel")
    port = free_port()
    config = _config(tmp_path / "gateway.toml", site, mosquitto.port, victoria.url, port)
    rng = random.Random(26875)
    async with Observer(mosquitto.port, site, persistent=False) as observer:
        proc = await _start(config)
        async with Watcher(mosquitto.port, f"sc/{site}/gateway/status", "status") as status:
            await status.next(lambda s: s.payload == b"online", timeout=20)
        deliveries: list[Delivery] = []
        async with TransmissionDevice("127.0.0.1", port, PANEL, confirm_timeout_s=1.0,
                                      retries=60, reconnect_s=0.3) as device:

            async def alarms() -> None:  # spread so that the kills fall among them
                for n in range(1, DETECTORS + 1):
                    deliveries.append(await device.fire(f"1-1-{n:03d}"))
                    await asyncio.sleep(0.1)

            sender = asyncio.create_task(alarms(), name="fault.panel")
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                proc = await _start(config)
            await asyncio.wait_for(sender, 120)
        proc.send_signal(signal.SIGTERM)  # a clean stop drains the journal to both sinks
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        accepted = await accepted_alarms(tmp_path / "journal.db")

        async def judged() -> bool:  # the store makes new points searchable within seconds
            verdict = await judge(accepted, observer.events, victoria.url, site)
            return verdict.lost_mqtt == 0 and verdict.lost_store == 0

        await eventually(judged, timeout=15, what="every accepted alarm delivered")
        verdict = await judge(accepted, observer.events, victoria.url, site)
        copies = mqtt_copies(accepted, [e for e in observer.events if e.type == "alarm"])
    verdict.extra.update(kills=KILLS, sends=sum(d.sends for d in deliveries),
                         same_id=copies.same_id, new_id=copies.new_id)
    verdict.print("gateway SIGKILL x5 under a fire panel")
    assert all(d.confirmed for d in deliveries)
    assert len(deliveries) == DETECTORS
    # each detector's alarm journalled exactly once: no loss, no second record
    assert Counter(e.device for e in accepted) == {
        f"smoke-{n:03d}": 1 for n in range(1, DETECTORS + 1)}
    assert (copies.lost, copies.new_id) == (0, 0)
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates) == (0, 0, 0)
