"""/metrics during a store outage: the store backlog grows, then drains after recovery."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.helpers import elder_gpio, eventually, make_config, running, unique_site


async def _scrape(port: int) -> dict[str, float]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body: bytes = resp.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    values = {}
    for line in text.splitlines():
        found = re.match(r"^(\w+(?:\{[^}]*\})?) (\S+)$", line)
        if found:
            values[found.group(1)] = float(found.group(2))
    return values


async def test_backlog_grows_during_store_outage_and_drains_after(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    port = free_port()
    config = make_config(tmp_path, site=unique_site("metrics"), broker_port=mosquitto.port,
                         store_url=victoria.url, devices=[elder_gpio("e1", pin=17)],
                         metrics={"host": "127.0.0.1", "port": port})
    async with running(Gateway(config)) as gateway:
        elder = SimulatedElder(gateway.pin_factory, 17, gateway.clock)

        async def serving() -> bool:
            try:
                await _scrape(port)
            except OSError:
                return False
            return True

        await eventually(serving, what="/metrics served")
        before = await _scrape(port)
        assert before['scgw_sink_backlog_records{sink="store"}'] == 0
        victoria.stop()
        try:
            for _ in range(5):
                elder.down()
                elder.up()
                await asyncio.sleep(0.05)
            await eventually(lambda: gateway.counters.get("store_retries") >= 2,
                             what="store writes failing")
            during = await _scrape(port)
            assert during['scgw_sink_backlog_records{sink="store"}'] >= 6  # 5 presses, 1 alert
            assert during['scgw_sink_backlog_records{sink="mqtt"}'] == 0
            assert during['scgw_sink_oldest_unsent_age_seconds{sink="store"}'] > 0
            assert during['scgw_store_retries_total{reason="unreachable"}'] >= 2
            assert during['scgw_device_online{device="e1",kind="elder_button"}'] == 1
            assert during["scgw_active_alerts"] == 1
        finally:
            victoria.start()

        async def drained() -> bool:
            return (await _scrape(port))['scgw_sink_backlog_records{sink="store"}'] == 0

        await eventually(drained, timeout=20, what="backlog drained")
        after = await _scrape(port)
        assert after['scgw_sink_oldest_unsent_age_seconds{sink="store"}'] == 0
        assert after["scgw_rule_evaluations_total"] >= 5
