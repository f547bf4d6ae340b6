"""Mosquitto SIGKILLed in the middle of a burst of 1,000 alarms: nothing accepted is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.faults.oracle import Observer, accepted_alarms, judge
from tests.helpers import elder_gpio, eventually, make_config, running, unique_site

BUTTONS = 10
PRESSES = 100  # per button: 1,000 alarms


async def test_broker_killed_mid_burst(tmp_path: Path, persistent_mosquitto: Mosquitto,
                                       victoria: VictoriaMetrics) -> None:
    mosquitto = persistent_mosquitto
    site = unique_site("fault-kill")
    config = make_config(
        tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url,
        devices=[elder_gpio(f"e{n}", pin=n + 2) for n in range(BUTTONS)],
        broker={"host": "127.0.0.1", "port": mosquitto.port, "reconnect_min_s": 2.0,
                "reconnect_max_s": 3.0, "publish_timeout_s": 5},
    )
    async with Observer(mosquitto.port, site) as observer:
        async with running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            elders = [SimulatedElder(gateway.pin_factory, n + 2, gateway.clock)
                      for n in range(BUTTONS)]
            for press in range(PRESSES):
                for elder in elders:
                    elder.down()
                    elder.up()
                if press == PRESSES // 3:
                    mosquitto.kill()
                await asyncio.sleep(0)  # let the drivers take the edges
            await eventually(lambda: gateway.counters.get("events_accepted") == BUTTONS * PRESSES,
                             what="every press accepted")
            assert not gateway.link.connected
            mosquitto.start()
            await asyncio.wait_for(observer.connected.wait(), 10)
            await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq
                             and gateway.store_sink.cursor >= gateway.journal.last_seq,
                             timeout=30, what="both sinks caught up")
            assert gateway.counters.get("mqtt_disconnects") >= 1
        # the stop waited for the replay of what the killed broker had confirmed (new
        # records go first, so the cursors above can be through while it is under way)
        assert not gateway.mqtt_sink.replaying
        accepted = await accepted_alarms(config.journal.path)

        async def judged() -> bool:
            verdict = await judge(accepted, observer.events, victoria.url, site)
            return verdict.lost_mqtt == 0 and verdict.lost_store == 0

        try:
            await eventually(judged, timeout=15, what="every alarm on MQTT and in the store")
        finally:
            verdict = await judge(accepted, observer.events, victoria.url, site)
            verdict.print("broker SIGKILL mid-burst")
    assert verdict.accepted == BUTTONS * PRESSES
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
