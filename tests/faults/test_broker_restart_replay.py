"""The broker restarted while the gateway holds a thousand retained alerts and a replay:
an alarm pressed right after the reconnect is not held back, and a replay is not repeated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from gateway.core.clock import ManualClock
from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceEvent, DeviceKind, Severity, new_id
from gateway.core.telemetry import TelemetryBuffer
from gateway.core.topics import Topics
from gateway.journal import Journal
from gateway.mqtt_link import LastWill, MqttLink
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.sinks.mqtt_sink import MqttSink
from gateway.status import Status, StatusBoard
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.faults.burst import BUTTONS, burst_config
from tests.faults.oracle import Observer, accepted_alarms, mqtt_copies
from tests.helpers import Watcher, eventually, running, unique_site

RETAINED_ALERTS = 1000
DEVICES = 1100  # statuses re-asserted too
PRESSES = 50  # per button before the restart, all within the replay window


def _alerts(count: int, ts: int) -> list[Alert]:
    return [Alert(id=new_id(ts), ts=ts, rule="elder.sos", device=f"far{n}",
                  kind=DeviceKind.ELDER_BUTTON, state=AlertState.FIRING,
                  severity=Severity.CRITICAL, since=ts, message="SOS")
            for n in range(count)]


async def test_an_alarm_after_a_broker_restart_is_not_held_back(
    tmp_path: Path, persistent_mosquitto: Mosquitto, victoria: VictoriaMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mosquitto = persistent_mosquitto
    site = unique_site("fault-restart")
    config = burst_config(tmp_path, site, mosquitto.port, victoria.url)
    caplog.set_level(logging.WARNING)
    async with Observer(mosquitto.port, site) as observer, running(Gateway(config)) as gateway:
        # a large compound: its devices' statuses and its open alerts, all retained
        gateway.mqtt_sink.seed(_alerts(RETAINED_ALERTS, gateway.clock.now_ms()))
        for n in range(DEVICES):
            gateway.board.add(f"far{n}", DeviceKind.ELDER_BUTTON, 0, gateway.clock.monotonic())
            gateway.board.set(f"far{n}", Status.ONLINE)
        elders = [SimulatedElder(gateway.pin_factory, n + 2, gateway.clock)
                  for n in range(BUTTONS)]
        for _ in range(PRESSES):
            for elder in elders:
                elder.down()
                elder.up()
            await asyncio.sleep(0)
        await eventually(lambda: gateway.counters.get("events_accepted") == BUTTONS * PRESSES,
                         what="every press accepted")
        await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                         what="the burst published")
        mosquitto.kill()
        await eventually(lambda: not gateway.link.connected, what="connection lost")
        mosquitto.start()
        async with Watcher(mosquitto.port, f"sc/{site}/elder_button/e0/event") as watcher:
            await eventually(lambda: gateway.connected, what="reconnected")
            pressed = asyncio.get_running_loop().time()
            pressed_ms = gateway.clock.now_ms()  # the burst's presses are stamped before
            elders[0].down()  # e0 has records of its own in the replay: they go first
            elders[0].up()
            accepted = BUTTONS * PRESSES + 1
            await eventually(lambda: gateway.counters.get("events_accepted") == accepted,
                             what="the press accepted")

            # the watcher subscribed after the restart: it sees (some of) e0's replayed
            # presses, then the new one
            replayed_before = 0
            while (await _next_event(watcher)).ts < pressed_ms:
                replayed_before += 1
            latency = asyncio.get_running_loop().time() - pressed
            await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq
                             and not gateway.mqtt_sink.replaying, what="the replay done")
            # a second press after the replay: what the watcher sees before it is everything
            # e0 had on the wire after the first; none of it may be an older press
            flushed_ms = gateway.clock.now_ms()
            elders[0].down()
            elders[0].up()
            late = []
            while (event := await _next_event(watcher)).ts < flushed_ms:
                late.append(event)
        events = await accepted_alarms(gateway.journal)
        await eventually(lambda: mqtt_copies(events, observer.events).lost == 0,
                         what="every alarm observed")
        copies = mqtt_copies(events, observer.events)
    print(f"[broker restart, {RETAINED_ALERTS} alerts, {DEVICES} statuses] press to MQTT "
          f"{latency * 1000:.0f} ms, after {replayed_before} replayed presses of its device; "
          f"{copies}")
    assert latency < 1.0
    assert [e for e in late if e.ts < pressed_ms] == []  # e0's replay went before its press
    assert (copies.lost, copies.new_id, copies.order_violations) == (0, 0, 0)
    # the replay once (a broker restored from its autosave may deliver a message it had
    # already delivered to a persistent subscriber once more)
    assert gateway.counters.get("mqtt_replayed") < 2 * BUTTONS * PRESSES
    assert copies.same_id < 2 * BUTTONS * PRESSES
    # never a whole site's retained messages waiting for their PUBACKs at once
    assert not [r for r in caplog.records if "pending publish calls" in r.getMessage()]


async def _next_event(watcher: Watcher) -> DeviceEvent:
    return msgspec.json.decode((await watcher.next(lambda _: True, timeout=5)).payload,
                               type=DeviceEvent)


@contextlib.asynccontextmanager
async def _sink(tmp_path: Path, port: int, site: str, clock: ManualClock,
                window_s: float, counters: Counters
                ) -> AsyncIterator[tuple[MqttLink, MqttSink, Journal]]:
    topics = Topics(site)
    link = MqttLink(BrokerConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.2),
                    f"gw-{site}", LastWill(topics.gateway_status, b"offline"), clock, counters)
    async with Journal(tmp_path / "journal.db") as journal:
        sink = MqttSink(link, journal, TelemetryBuffer(100, counters), StatusBoard(), topics,
                        counters, clock, window_s)
        tasks = [asyncio.create_task(link.run(), name="test.link"),
                 asyncio.create_task(sink.run(), name="test.sink")]
        try:
            yield link, sink, journal
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _reconnect(link: MqttLink, clock: ManualClock) -> None:
    """Let the link's reconnect delay pass on the manual clock."""
    async with asyncio.timeout(10):
        while not link.connected:
            clock.advance(0.05)
            await asyncio.sleep(0.01)


async def test_a_replay_is_sent_once_per_loss(tmp_path: Path,
                                              persistent_mosquitto: Mosquitto) -> None:
    mosquitto = persistent_mosquitto
    site = unique_site("fault-replay-once")
    clock = ManualClock()
    counters = Counters()
    window_s = 10.0
    events = [make_event(DeviceKind.ELDER_BUTTON, f"e{n % BUTTONS}", "press", 1000 + n)
              for n in range(100)]
    # a subscriber without a session: nothing the broker redelivers after its restart is
    # counted as the gateway's
    async with Observer(mosquitto.port, site, persistent=False) as observer, _sink(
        tmp_path, mosquitto.port, site, clock, window_s, counters
    ) as (link, sink, journal):
        await _reconnect(link, clock)
        for event in events:
            await journal.append(event)
        await eventually(lambda: sink.cursor == journal.last_seq, what="confirmed")
        # three restarts 6 s apart: the first within the window after the records were
        # confirmed, the others after it. A press after each reconnect is confirmed then,
        # and so replayed at the next loss (6 s later) but not at the one after (12 s).
        for restart in range(3):
            clock.advance(0.6 * window_s)
            mosquitto.restart()
            await eventually(lambda: not link.connected, what="connection lost")
            back = restart + 2
            await eventually(lambda: observer.connections == back,  # noqa: B023
                             what="the observer back")
            await _reconnect(link, clock)
            mark = make_event(DeviceKind.ELDER_BUTTON, "e0", "press", 2000 + restart)
            events.append(mark)
            await journal.append(mark)
            await eventually(lambda: sink.cursor == journal.last_seq and not sink.replaying,
                             what="the press after the reconnect confirmed, the replay done")
        last = make_event(DeviceKind.ELDER_BUTTON, "e0", "press", 3000)
        events.append(last)
        await journal.append(last)
        # one publisher, one subscriber: the last record seen means everything before it is
        await eventually(lambda: any(e.id == last.id for e in observer.events),
                         what="the last record observed")
        copies = mqtt_copies(events, observer.events)
    print(f"[replay once per loss] {copies}, replayed {counters.get('mqtt_replayed')}")
    assert (copies.lost, copies.new_id, copies.order_violations) == (0, 0, 0)
    # the 100 after the first loss only; the first two presses after the next loss each
    assert counters.get("mqtt_replayed") == 100 + 2
    assert copies.same_id <= 100 + 2
