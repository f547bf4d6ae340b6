"""A stop that comes while the gateway replays what a lost broker had confirmed waits for
the replay: those alarms reach MQTT only through it, and nothing replays them after the
stop (the sink's cursor is past them)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.core.model import DeviceEvent
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.sinks.mqtt_sink import MqttSink
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.helpers import (
    Seen,
    Watcher,
    elder_gpio,
    eventually,
    make_config,
    running,
    unique_site,
)

PRESSES = 5


async def test_a_stop_during_the_replay_after_a_broker_loss_waits_for_it(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the replay held until the test lets it go: the stop comes while it is under way
    held = asyncio.Event()
    replay_started = asyncio.Event()
    send_again = MqttSink._send_again

    async def held_replay(sink: MqttSink, session: Any, entries: Any) -> None:
        replay_started.set()
        await held.wait()
        await send_again(sink, session, entries)

    monkeypatch.setattr(MqttSink, "_send_again", held_replay)
    site = unique_site("stop-replay")
    config = make_config(
        tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url,
        devices=[elder_gpio("e0", pin=2)],
        broker={"host": "127.0.0.1", "port": mosquitto.port, "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.2},
        shutdown_timeout_s=10.0)
    async with running(Gateway(config)) as gateway:
        elder = SimulatedElder(gateway.pin_factory, 2, gateway.clock)
        for _ in range(PRESSES):
            elder.down()
            elder.up()
            await asyncio.sleep(0.05)
        await eventually(lambda: gateway.counters.get("events_accepted") == PRESSES
                         and gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                         what="the presses confirmed by the broker")
        mosquitto.kill()
        mosquitto.start()
        await asyncio.wait_for(replay_started.wait(), 15)
        async with Watcher(mosquitto.port, f"sc/{site}/#", "after") as watcher:
            gateway.stop()
            # while the replay is held the gateway does not say offline (watched for 1 s:
            # without waiting for the replay, the stop said so at once and closed)
            with contextlib.suppress(TimeoutError):
                early = await watcher.next(lambda s: s.topic.endswith("/gateway/status")
                                           and not s.retain, timeout=1.0)
                pytest.fail(f"the gateway said {early.payload!r} during the replay")
            held.set()
            seen: list[Seen] = []
            while not (seen and seen[-1].topic.endswith("/gateway/status")
                       and seen[-1].payload == b"offline"):
                seen.append(await watcher.next(lambda s: not s.retain, timeout=20))
    replayed = [msgspec.json.decode(s.payload, type=DeviceEvent).type for s in seen
                if s.topic.endswith("/e0/event")]
    # every press again, before the gateway said it was going offline
    assert replayed == ["press"] * PRESSES
    assert not gateway.mqtt_sink.replaying
    assert gateway.counters.get("mqtt_replayed") >= PRESSES
