"""The store down for a whole burst, and answering 500, 429 and slowly: nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.faults.burst import assert_clean, burst_config, press_all, verdict_after
from tests.faults.oracle import Observer
from tests.faults.proxy import fault_proxy
from tests.helpers import eventually, running, unique_site


async def test_store_down_for_the_whole_burst(tmp_path: Path, mosquitto: Mosquitto,
                                              victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-store-down")
    config = burst_config(tmp_path, site, mosquitto.port, victoria.url)
    async with Observer(mosquitto.port, site) as observer, running(Gateway(config)) as gateway:
        victoria.stop()
        try:
            async def nothing(_: int) -> None:
                return None

            await press_all(gateway, nothing)
            await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                             what="MQTT delivered while the store is down")
            await eventually(lambda: gateway.counters.get("store_retries") >= 3,
                             what="store writes failing")
            assert gateway.store_sink.cursor == 0  # nothing confirmed, nothing dropped
        finally:
            victoria.start()
        verdict = await verdict_after(gateway, observer, victoria.url, site)
    verdict.print("store down for the whole burst")
    assert_clean(verdict)


async def test_store_answers_500_429_and_slowly(tmp_path: Path, mosquitto: Mosquitto,
                                                victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-store-errors")
    async with fault_proxy(victoria.url, slow_s=1.0) as proxy:
        proxy.script = [500, 500, 429, "slow", 503, 429, "slow", 500]
        config = burst_config(tmp_path, site, mosquitto.port, proxy.url,
                              store={"url": proxy.url, "flush_interval_s": 0.2,
                                     "timeout_s": 0.5, "retry_min_s": 0.05,
                                     "retry_max_s": 0.3, "batch_size": 200})
        async with Observer(mosquitto.port, site) as observer, running(
            Gateway(config)
        ) as gateway:
            async def nothing(_: int) -> None:
                return None

            await press_all(gateway, nothing, pause_s=0.005)
            verdict = await verdict_after(gateway, observer, victoria.url, site)
            verdict.extra.update({f"store_retries_{r}": gateway.counters.get(
                "store_retries", reason=r) for r in ("500", "429", "503", "unreachable")})
    verdict.print("store answering 500, 429 and slowly")
    assert_clean(verdict)
    assert proxy.script == []  # every scripted fault was served
    assert verdict.extra["store_retries_500"] == 3
    assert verdict.extra["store_retries_429"] == 2
    assert verdict.extra["store_retries_unreachable"] == 2  # the slow answers timed out


async def test_broker_flapping_every_two_seconds(tmp_path: Path,
                                                 persistent_mosquitto: Mosquitto,
                                                 victoria: VictoriaMetrics) -> None:
    mosquitto = persistent_mosquitto
    site = unique_site("fault-flap")
    config = burst_config(tmp_path, site, mosquitto.port, victoria.url,
                          broker={"host": "127.0.0.1", "port": mosquitto.port,
                                  "reconnect_min_s": 0.3, "reconnect_max_s": 0.6,
                                  "publish_timeout_s": 2})
    flaps = 0
    async with Observer(mosquitto.port, site) as observer, running(Gateway(config)) as gateway:
        loop = asyncio.get_running_loop()
        last = loop.time()

        async def flap(_: int) -> None:
            nonlocal last, flaps
            if loop.time() - last >= 2.0:  # down for a moment every 2 s
                mosquitto.kill()
                await asyncio.sleep(0.3)
                mosquitto.start()
                last = loop.time()
                flaps += 1

        await press_all(gateway, flap, pause_s=0.06)  # about 6 s of burst
        verdict = await verdict_after(gateway, observer, victoria.url, site)
        verdict.extra["flaps"] = flaps
    verdict.print("broker flapping every 2 s")
    assert flaps >= 2
    assert_clean(verdict)
