"""The broker link against a real Mosquitto: QoS 0 and QoS 1 ingress, acknowledgement
after the handler, the QoS 0 backlog bound, and connections that break under a write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from gateway.core.clock import SystemClock
from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.right_of_way import RightOfWay
from gateway.link import dispatch
from gateway.link.connection import ASIDE_BURST
from gateway.mqtt_link import Inbound, LastWill, LinkDownError, MqttLink
from gateway.ops.private_servers import Mosquitto
from tests.helpers import eventually


def _link(port: int, client_id: str, counters: Counters | None = None) -> MqttLink:
    return MqttLink(BrokerConfig(port=port, reconnect_min_s=0.05, reconnect_max_s=0.1),
                    client_id, LastWill(f"sc/{client_id}/gateway/status", b"offline"),
                    SystemClock(), counters or Counters())


@contextlib.asynccontextmanager
async def _running(link: MqttLink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run(), name="test.link")
    try:
        await asyncio.wait_for(link.session(), 10)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def _source(port: int) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-source") as client:
        yield client


async def test_qos0_messages_reach_the_handler_in_order(mosquitto: Mosquitto) -> None:
    link = _link(mosquitto.port, "gw-qos0")
    seen: list[Inbound] = []
    link.subscribe("dev/+/telemetry", seen.append)
    async with _running(link), _source(mosquitto.port) as source:
        for i in range(2000):
            await source.publish("dev/a/telemetry", str(i).encode(), qos=0)
        await source.publish("dev/b/telemetry", b"last", qos=0, retain=False)
        await eventually(lambda: len(seen) == 2001, what="2001 QoS 0 messages")
    assert [m.payload for m in seen[:2000]] == [str(i).encode() for i in range(2000)]
    assert {(m.qos, m.mid, m.retain) for m in seen} == {(0, 0, False)}
    assert seen[-1].topic == "dev/b/telemetry"


async def test_a_paced_link_reads_a_message_that_follows_another_only_at_its_pace(
    mosquitto: Mosquitto,
) -> None:
    """Under a stream, a session reads at most once per `pace_s` (each read takes all that
    came meanwhile); one without a pace reads a message as soon as it comes."""
    paced, prompt = _link(mosquitto.port, "gw-paced"), _link(mosquitto.port, "gw-prompt")
    paced.pace_s = 60.0  # far beyond the test: a read within it of the last one waits
    prompt.pace_s = 0.0
    got: dict[str, list[bytes]] = {"paced": [], "prompt": []}
    paced.subscribe("dev/pace/+", lambda m: got["paced"].append(m.payload))
    prompt.subscribe("dev/pace/+", lambda m: got["prompt"].append(m.payload))
    async with _running(paced), _running(prompt), _source(mosquitto.port) as source:
        # both sessions last read their SUBACK: the message comes within the pace of it
        await source.publish("dev/pace/a", b"first", qos=0)
        await eventually(lambda: got["prompt"] == [b"first"],
                         what="the message on the session without a pace")
        assert got["paced"] == []  # waits for the paced read, a minute after the last


async def test_qos0_messages_beyond_the_backlog_are_dropped_and_counted(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "QOS0_BACKLOG", 20)
    counters = Counters()
    link = _link(mosquitto.port, "gw-qos0-backlog", counters)
    journal_open = asyncio.Event()
    handled: list[bytes] = []

    async def journal(message: Inbound) -> None:
        await journal_open.wait()  # a journal that does not keep up
        handled.append(message.payload)

    link.subscribe("dev/+/event", journal)
    async with _running(link), _source(mosquitto.port) as source:
        for i in range(50):
            await source.publish("dev/a/event", str(i).encode(), qos=0)
        await eventually(lambda: counters.get("dropped", cls="telemetry",
                                              reason="incoming_backlog") == 30,
                         what="30 messages dropped")
        journal_open.set()
        await eventually(lambda: len(handled) == 20, what="the first 20 handled")
        await source.publish("dev/a/event", b"after", qos=0)
        await eventually(lambda: len(handled) == 21, what="the one after the backlog")
    assert handled == [str(i).encode() for i in range(20)] + [b"after"]


async def test_a_qos1_message_is_acknowledged_only_after_its_handler(
    mosquitto: Mosquitto,
) -> None:
    """The handler has not finished (journalled) when the gateway stops: the broker still
    has the message and delivers it again, with its packet id, on the next connection."""
    first: list[Inbound] = []
    never = asyncio.Event()

    async def stuck(message: Inbound) -> None:
        first.append(message)
        await never.wait()

    link = _link(mosquitto.port, "gw-ack-after")
    link.subscribe("dev/+/event", stuck)
    async with _running(link):
        async with _source(mosquitto.port) as source:
            await source.publish("dev/a/event", b"press", qos=1)
        await eventually(lambda: len(first) == 1, what="the message handled")

    again: list[Inbound] = []
    link = _link(mosquitto.port, "gw-ack-after")
    link.subscribe("dev/+/event", again.append)
    async with _running(link):
        await eventually(lambda: len(again) == 1, what="the message delivered again")
    assert (again[0].topic, again[0].payload, again[0].qos) == ("dev/a/event", b"press", 1)
    assert again[0].mid == first[0].mid

    # acknowledged this time: nothing comes a third time
    third: list[Inbound] = []
    link = _link(mosquitto.port, "gw-ack-after")
    link.subscribe("dev/+/event", third.append)
    async with _running(link), _source(mosquitto.port) as source:
        await source.publish("dev/a/event", b"marker", qos=1)
        await eventually(lambda: len(third) == 1, what="the marker")
    assert [m.payload for m in third] == [b"marker"]


async def test_qos0_and_qos1_publishes_reach_a_subscriber(mosquitto: Mosquitto) -> None:
    link = _link(mosquitto.port, "gw-out")
    got: list[tuple[str, bytes, int]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-sink") as sink:
        await sink.subscribe("out/#", qos=1)

        async def collect() -> None:
            async for message in sink.messages:
                got.append((message.topic.value, bytes(message.payload), message.qos))

        collector = asyncio.create_task(collect(), name="test.collect")
        try:
            async with _running(link):
                session = await link.session()
                await link.publish_fast(session, [(f"out/t/{i}", b"r") for i in range(500)])
                await link.publish_on(session, "out/alarm", b"a", qos=1)
                await link.publish_all(session, [(f"out/a/{i}", b"%d" % i, False)
                                                 for i in range(300)])
                await eventually(lambda: len(got) == 801, what="801 messages")
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
    assert [t for t, _, _ in got[:500]] == [f"out/t/{i}" for i in range(500)]
    assert got[500] == ("out/alarm", b"a", 1)
    assert got[501:] == [(f"out/a/{i}", b"%d" % i, 1) for i in range(300)]


async def test_a_connection_taken_over_mid_write_is_replaced_without_errors(
    mosquitto: Mosquitto,
) -> None:
    """A client with the gateway's id makes the broker drop the gateway's connection while
    the connection has a burst to write: the loop's reader and writer for that socket go with it
    (a writer left for a closed descriptor failed with EBADF, or fired for ever for the
    next connection's), and the link connects again."""
    link = _link(mosquitto.port, "gw-takeover")
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        async with _running(link):
            session = await link.session()
            burst = [(f"out/{i}", b"x" * 1000) for i in range(5000)]
            sending = asyncio.create_task(link.publish_fast(session, burst), name="test.burst")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="gw-takeover"):
                await session.lost
            await asyncio.gather(sending, return_exceptions=True)
            again = await asyncio.wait_for(link.session(), 10)
            assert again.number == session.number + 1
            await link.publish_on(again, "out/after", b"ok", qos=1)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("exception") for c in errors] == []


async def test_reading_stops_while_too_many_qos1_messages_are_unjournalled(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-pressure reaches the broker: the link reads no further while PIPELINE QoS 1
    messages wait for their journal commits (Mosquitto 2.0.11 sends past the receive
    maximum), and reads on, in order, once they are done."""
    monkeypatch.setattr(dispatch, "PIPELINE", 4)
    journal_open = asyncio.Event()
    started: list[bytes] = []

    async def journal(message: Inbound) -> None:
        await journal_open.wait()

    def handle(message: Inbound) -> Any:
        started.append(message.payload)
        return journal(message)

    link = _link(mosquitto.port, "gw-backpressure")
    link.subscribe("dev/+/event", handle)
    async with _running(link), _source(mosquitto.port) as source:
        for i in range(12):  # a topic each: nothing waits behind another of its topic
            await source.publish(f"dev/{i}/event", str(i).encode(), qos=1)
        await eventually(lambda: len(started) == 4, what="4 messages taken")
        # a publish of the link's own meanwhile completes once reading goes on
        session = await link.session()
        alarm = asyncio.create_task(link.publish_on(session, "out/alarm", b"a"),
                                    name="test.alarm")
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(started) == 4
        journal_open.set()
        await eventually(lambda: len(started) == 12, what="the other 8 taken")
        await asyncio.wait_for(alarm, 10)
    assert started == [str(i).encode() for i in range(12)]


async def test_a_publish_without_puback_in_time_raises_link_down(
    mosquitto: Mosquitto,
) -> None:
    counters = Counters()
    link = MqttLink(BrokerConfig(port=mosquitto.port, publish_timeout_s=0.3), "gw-timeout",
                    LastWill("sc/gw-timeout/gateway/status", b"offline"), SystemClock(),
                    counters)
    async with _running(link):
        session = await link.session()
        with mosquitto.frozen(), pytest.raises(LinkDownError):
            await link.publish_on(session, "out/alarm", b"a")
        assert counters.get("mqtt_publish_failed", reason="timeout") == 1
        await link.publish("out/after", b"b")  # the connection serves again


async def test_alerts_in_flight_keep_within_the_brokers_receive_maximum(tmp_path: Any) -> None:
    """The gateway sends up to broker.max_inflight QoS 1 messages per round trip, never
    more than the broker's CONNACK allows: a lower Receive Maximum makes it connect again
    within it, before anything was sent, without counting a lost connection."""
    counters = Counters()
    broker = Mosquitto(tmp_path / "narrow", max_inflight=7)
    broker.start()
    try:
        link = _link(broker.port, "gw-inflight", counters)
        assert link.max_inflight == 1000  # the configured default
        async with _running(link):
            session = await link.session()
            await asyncio.gather(*(link.publish_on(session, f"out/{i}", b"x", qos=1)
                                   for i in range(200)))
            # a batch in one write still waits for PUBACKs beyond the window
            await link.publish_all(session, [(f"out/b/{i}", b"x", False) for i in range(200)])
        assert link.max_inflight == 7
        assert session.number == 1
        assert counters.get("mqtt_disconnects") == 0
    finally:
        broker.stop()


async def test_a_broker_with_room_keeps_the_configured_in_flight_limit(
        mosquitto: Mosquitto) -> None:
    link = _link(mosquitto.port, "gw-inflight-wide")
    async with _running(link):
        session = await link.session()
        await asyncio.gather(*(link.publish_on(session, f"out/{i}", b"x", qos=1)
                               for i in range(200)))
    assert mosquitto.max_inflight == 1000
    assert link.max_inflight == 1000
    assert session.number == 1


async def test_while_an_alarm_is_on_its_way_a_turn_handles_a_few_packets(
    mosquitto: Mosquitto,
) -> None:
    """With the way claimed, the link handles ASIDE_BURST packets a turn of the loop, not
    READ_BURST; every message still comes in, in order."""
    way = RightOfWay(max_claim_s=60.0)
    link = MqttLink(BrokerConfig(port=mosquitto.port), "gw-aside", None, SystemClock(),
                    Counters(), right_of_way=way)
    link.pace_s = 0.3  # each read takes all that came meanwhile: many packets at once
    turn = 0
    per_turn: dict[int, int] = {}
    seen: list[bytes] = []

    def handle(message: Inbound) -> None:
        seen.append(message.payload)
        per_turn[turn] = per_turn.get(turn, 0) + 1

    async def count_turns() -> None:
        nonlocal turn
        while True:
            turn += 1
            await asyncio.sleep(0)  # once per turn of the loop

    link.subscribe("dev/+/telemetry", handle)
    counting = asyncio.create_task(count_turns(), name="test.turns")
    try:
        async with _running(link), _source(mosquitto.port) as source:
            for held in (True, False):
                claim = way.claim() if held else None
                per_turn.clear()
                sent = [f"{held}-{i}".encode() for i in range(300)]
                for payload in sent:
                    await source.publish("dev/a/telemetry", payload, qos=0)
                await eventually(lambda s=sent: seen[-300:] == s,  # type: ignore[misc]
                                 what="300 messages, in order")
                if claim is not None:
                    assert max(per_turn.values()) <= ASIDE_BURST
                    way.end(claim)
                else:
                    assert max(per_turn.values()) > ASIDE_BURST
    finally:
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)


async def test_a_session_of_readings_alone_handles_none_while_an_alarm_is_on_its_way(
    mosquitto: Mosquitto,
) -> None:
    """`aside_burst` 0 (the bulk session): the messages wait in the buffer until the way
    is clear, then every one comes in, in order."""
    way = RightOfWay(max_claim_s=60.0)
    link = MqttLink(BrokerConfig(port=mosquitto.port), "gw-aside-bulk", None, SystemClock(),
                    Counters(), right_of_way=way)
    link.aside_burst = 0
    link.pace_s = 0.0
    seen: list[bytes] = []
    link.subscribe("dev/+/telemetry", lambda m: seen.append(m.payload))
    async with _running(link), _source(mosquitto.port) as source:
        await source.publish("dev/a/telemetry", b"before", qos=0)
        await eventually(lambda: seen == [b"before"], what="a message before the claim")
        claim = way.claim()
        sent = [str(i).encode() for i in range(100)]
        for payload in sent:
            await source.publish("dev/a/telemetry", payload, qos=0)
        await source.publish("dev/a/telemetry", b"marker", qos=0)
        await asyncio.sleep(0.5)  # read long since: the link reads as soon as data comes
        assert seen == [b"before"]
        way.end(claim)
        await eventually(lambda: len(seen) == 102, what="every message once the way is clear")
    assert seen == [b"before", *sent, b"marker"]
