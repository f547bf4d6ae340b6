"""VictoriaMetrics SIGKILLed during a burst, right after it accepted points, and restarted:
what it had answered 2xx to and not yet flushed is written again, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.faults.burst import PRESSES, assert_clean, burst_config, press_all, verdict_after
from tests.faults.oracle import Observer
from tests.helpers import eventually, running, unique_site


async def test_store_killed_right_after_accepting_points(tmp_path: Path,
                                                         mosquitto: Mosquitto) -> None:
    store = VictoriaMetrics(tmp_path / "victoria-metrics")
    store.start()
    try:
        site = unique_site("fault-store-kill")
        config = burst_config(tmp_path, site, mosquitto.port, store.url,
                              store={"url": store.url, "flush_interval_s": 0.1,
                                     "retry_min_s": 0.05, "retry_max_s": 0.2})
        async with Observer(mosquitto.port, site) as observer, running(
            Gateway(config)
        ) as gateway:
            killed_at = 0

            async def kill_after_a_write(press: int) -> None:
                nonlocal killed_at
                if press != PRESSES // 2:
                    return
                written = gateway.store_sink.cursor
                await eventually(lambda: gateway.store_sink.cursor > written,
                                 what="a write accepted")
                # the store has answered 2xx; VictoriaMetrics holds the last second in memory
                store.kill()
                killed_at = gateway.store_sink.cursor
                await asyncio.sleep(0)
                store.start()  # same data directory, same port

            await press_all(gateway, kill_after_a_write, pause_s=0.002)
            verdict = await verdict_after(gateway, observer, store.url, site)
            verdict.extra["killed_at_record"] = killed_at
            verdict.extra["store_replayed"] = gateway.counters.get("store_replayed")
    finally:
        store.stop()
    verdict.print("store SIGKILL right after accepting points")
    assert killed_at > 0
    assert verdict.extra["store_replayed"] > 0
    assert_clean(verdict)
