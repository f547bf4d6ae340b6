"""The gateway SIGKILLed 20 times at random points of a burst: every accepted alarm arrives."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

import aiomqtt

from gateway.journal import Journal
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.sinks import mqtt_sink, store_sink
from tests.faults.oracle import Observer, accepted_alarms, judge
from tests.helpers import Watcher, eventually, unique_site

KILLS = 20
MESSAGES = 1000


def _config(path: Path, site: str, broker: int, store: str) -> Path:
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
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
[devices.mqtt]
topic = "vendor/{site}/sos-1"
event_key = "action"
events = {{ single = "press" }}
""")
    return path


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config), "--log-level",
        "warning", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_gateway_sigkilled_twenty_times(tmp_path: Path, mosquitto: Mosquitto,
                                              victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-crash")
    config = _config(tmp_path / "gateway.toml", site, mosquitto.port, victoria.url)
    rng = random.Random(20)
    async with Observer(mosquitto.port, site) as observer, aiomqtt.Client(
        "127.0.0.1", mosquitto.port, identifier="burst-source"
    ) as source:
        proc = await _start(config)
        async with Watcher(mosquitto.port, f"sc/{site}/gateway/status", "status") as status:
            # from its first connection on, the broker keeps the gateway's session
            await status.next(lambda s: s.payload == b"online", timeout=20)

        async def burst() -> None:  # spread over about 20 s, so the kills fall inside it
            for n in range(MESSAGES):
                await source.publish(f"vendor/{site}/sos-1", b'{"action": "single"}', qos=1)
                if n % 25 == 24:
                    await asyncio.sleep(0.5)

        sender = asyncio.create_task(burst(), name="fault.burst")
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.5, 1.2))  # a random point of the burst
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            proc = await _start(config)
        await sender

        # the broker re-delivers what the gateway had not acknowledged when it died; the
        # running gateway holds its journal for itself: what it accepted shows on MQTT (the
        # journal itself is read, and judged, once it stopped)
        await eventually(lambda: len({e.id for e in observer.events}) >= MESSAGES,
                         timeout=30, what="every message accepted and published")
        proc.send_signal(signal.SIGTERM)  # a clean stop drains the journal to both sinks
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        async with Journal(tmp_path / "journal.db") as journal:
            assert await journal.cursor(mqtt_sink.CONSUMER) == journal.last_seq
            assert await journal.cursor(store_sink.CONSUMER) == journal.last_seq
        accepted = await accepted_alarms(tmp_path / "journal.db")

        async def judged() -> bool:
            verdict = await judge(accepted, observer.events, victoria.url, site)
            return verdict.lost_mqtt == 0 and verdict.lost_store == 0

        await eventually(judged, timeout=15, what="every accepted alarm delivered")
        verdict = await judge(accepted, observer.events, victoria.url, site)
    verdict.extra["kills"] = KILLS
    verdict.print("gateway SIGKILL x20")
    # nothing the broker accepted was lost either; what a kill between the journal commit
    # and the acknowledgement makes the broker deliver again is recognised (same packet
    # id, same content) and journalled once
    assert verdict.accepted == MESSAGES
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
