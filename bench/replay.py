"""Replay after a store outage: how fast a journalled backlog drains once the store is back.

A gateway with 20 door controllers writes to a VictoriaMetrics of its own. The store is
stopped; 100,000 door events (event class: journalled, one point each) come in through
the gateway's intake and are published on MQTT as usual, while the store sink retries
its first batch. Once everything else has caught up, the store starts again on the same
port, and the store sink drains the journal. The drain rate is the points written from
the first accepted batch to the last, over that time, as the gateway counts its 2xx
answers; the store is then asked how many points it holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from bench import configs
from bench.gateway_bench import Servers, _start
from bench.hostctl import BenchError, GatewayProcess
from bench.pipeline import count_points
from bench.report import Row
from gateway.ops.private_servers import VictoriaMetrics

Progress = Callable[[str], None]

SITE = "replay"
DOORS = 20


async def run(srv: Servers, workdir: Path, progress: Progress, *, points: int = 100_000
              ) -> list[Row]:
    store = VictoriaMetrics(workdir / "replay-store")
    await _start(store.start)
    try:
        return await _run(srv, store, workdir, progress, points)
    finally:
        await asyncio.to_thread(store.stop)


async def _run(srv: Servers, store: VictoriaMetrics, workdir: Path, progress: Progress,
               points: int) -> list[Row]:
    doors = [{"id": f"door-{i:02d}", "kind": "access", "transport": "mqtt",
              "location": {"building": str(1 + i // 5)},
              "mqtt": {"topic": f"bench/replay/door-{i:02d}", "event_key": "state",
                       "events": {"open": "door_opened", "closed": "door_closed"}}}
             for i in range(DOORS)]
    where = workdir / "gateway-replay"
    config = configs.gateway(SITE, where, srv.mosquitto.port, store.url, doors)
    # retry soon after the store is back: the drain, not the backoff, is measured
    config["store"] |= {"retry_min_s": 0.2, "retry_max_s": 1.0}
    since_ms = time.time_ns() // 1_000_000 - 1000
    async with GatewayProcess("gateway-replay", config, where) as gw:
        await asyncio.to_thread(store.stop)
        progress(f"replay: store stopped; {points:,} door events into the journal")
        appended = await gw.backlog(points, [str(d["id"]) for d in doors], "access", "granted")
        deadline = time.monotonic() + 300
        while True:  # everything but the store has caught up
            stats = await gw.stats()
            if stats.mqtt_cursor >= stats.last_seq and stats.store_cursor < stats.last_seq:
                break
            if time.monotonic() > deadline:
                raise BenchError("the MQTT side did not catch up with the backlog in 300 s")
            await asyncio.sleep(0.5)
        backlog = stats.last_seq - stats.store_cursor
        written0 = stats.counters["store_points_written"]
        progress(f"replay: {backlog:,} records behind the store; starting it again")
        await _start(store.start)
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 300
        while True:
            stats = await gw.stats()
            written = stats.counters["store_points_written"] - written0
            if first is None and written > 0:
                first = (stats.mono, written)
            if stats.store_cursor >= stats.last_seq:
                break
            if time.monotonic() > deadline:
                raise BenchError("the store backlog did not drain in 300 s")
            await asyncio.sleep(0.05)
    assert first is not None
    seconds = max(stats.mono - first[0], 1e-6)
    rate = (written - first[1]) / seconds
    stored = await asyncio.to_thread(count_points, store.url, f'sc_event_count{{site="{SITE}"}}',
                                     since_ms)
    return [Row(
        "replay", f"{backlog:,}-point backlog after a store outage",
        f"{rate:,.0f} points/s",
        f"{written:,} points written, drained in {seconds:.1f} s after the first accepted "
        f"batch; the store holds {stored:,} (batches of {configs.STORE_BATCH:,}, the "
        f"default); the backlog went into the journal at "
        f"{points / float(appended['seconds']):,.0f} events/s",
        {"backlog": backlog, "points_written": written, "seconds": seconds,
         "points_per_s": rate, "stored": stored,
         "journal_events_per_s": points / float(appended["seconds"])})]
