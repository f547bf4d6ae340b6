"""The MQTT link's dispatch of arbitrary messages: routing, per-topic order, acknowledgement.

The connection's reading of the packets is fuzzed in fuzz/mqtt_stream.py; what is fuzzed
here is what the gateway does with whatever the connection hands over: any topic (with
wildcard characters, `$`-topics, empty levels), any payload, QoS 0 or 1, retained or not,
any packet id, redelivered or not, to handlers that finish at once, later, fail, or cannot
journal. The input is a sequence of messages, each as

    flags (1 byte: bit 0 retain, bit 1 QoS 1, bits 2-3 the handler's answer)
    topic length (1 byte), topic, payload length (1 byte), payload, packet id (2 bytes)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.client import topic_matches_sub

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.inbound import Handler, Inbound
from gateway.journal import NotJournalledError
from gateway.link.dispatch import Dispatch
from gateway.link.routes import Routes

FILTERS = ("vendor/+/sos", "sc/+/alerts/+/+/ack", "#", "$share/g/dev/#", "a/+/+/b", "+")
ANSWERS = ("now", "later", "fails", "not_journalled")


@dataclass(slots=True)
class _Run:
    handled: dict[str, list[Inbound]] = field(default_factory=dict)  # filter -> messages
    acked: list[tuple[int, int]] = field(default_factory=list)


def message_bytes(flags: int, topic: bytes, payload: bytes, mid: int) -> bytes:
    """One message in this target's input format (topic and payload up to 255 bytes)."""
    return (bytes([flags, len(topic)]) + topic + bytes([len(payload)]) + payload
            + mid.to_bytes(2, "big"))


def messages(data: bytes) -> list[tuple[Inbound, str]]:
    """The messages in `data`, each with what its handlers do; a cut-off tail is dropped."""
    out: list[tuple[Inbound, str]] = []
    at = 0
    while at + 2 <= len(data):
        flags, size = data[at], data[at + 1]
        raw_topic = data[at + 2:at + 2 + size]
        at += 2 + size
        if at >= len(data):
            break
        size = data[at]
        payload = data[at + 1:at + 1 + size]
        at += 1 + size
        mid = int.from_bytes(data[at:at + 2], "big") or 1
        at += 2
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:
            continue  # the connection drops such a message before the dispatch
        qos = (flags >> 1) & 1
        out.append((Inbound(topic, payload, qos, bool(flags & 1), mid if qos else 0),
                    ANSWERS[(flags >> 2) & 3]))
    return out


def _handler(run: _Run, topic_filter: str, answers: dict[int, str]) -> Handler:
    def handle(message: Inbound) -> Coroutine[Any, Any, None] | None:
        run.handled.setdefault(topic_filter, []).append(message)
        answer = answers[id(message)]
        if answer == "fails":
            raise ValueError("a handler's own bug")
        if answer == "now":
            return None
        return _later(answer == "not_journalled")

    return handle


async def _later(refuse: bool) -> None:
    await asyncio.sleep(0)
    if refuse:
        raise NotJournalledError("disk_full", "the journal refused the record")


async def _dispatch(batch: list[tuple[Inbound, str]]
                    ) -> tuple[_Run, Counters, Routes, dict[str, Handler]]:
    run = _Run()
    answers = {id(message): answer for message, answer in batch}
    routes = Routes()
    handlers = {f: _handler(run, f, answers) for f in FILTERS}
    for topic_filter, handler in handlers.items():
        routes.add(topic_filter, handler)
    counters = Counters()
    inbox = Dispatch(routes, counters, ManualClock(),
                     lambda mid, qos: run.acked.append((mid, qos)), lambda paused: None)
    for message, _ in batch:
        inbox.deliver(message)
    for _ in range(4 * len(batch) + 4):  # every chain runs to its end
        await asyncio.sleep(0)
    await inbox.close()
    return run, counters, routes, handlers


def _expected_filters(topic: str) -> list[str]:
    """The filters a topic matches, as paho's own matcher says (MQTT 3.1.1/5 4.7)."""
    found = []
    for topic_filter in FILTERS:
        plain = topic_filter.split("/", 2)[2] if topic_filter.startswith("$share/") else (
            topic_filter)
        if topic_matches_sub(plain, topic):
            found.append(topic_filter)
    return found


def mqtt_dispatch(data: bytes) -> None:
    """Arbitrary messages through the dispatch: no exception escapes, each message goes
    to the handlers of the filters it matches and in its topic's order, and each QoS 1
    message is acknowledged once, in arrival order, unless it was not journalled."""
    batch = messages(data)
    run, counters, routes, handlers = asyncio.run(_dispatch(batch))
    arrived = [message for message, _ in batch]
    position = {id(message): n for n, message in enumerate(arrived)}  # equal ones too
    for n, message in enumerate(arrived):
        if "+" in message.topic or "#" in message.topic or not message.topic:
            continue  # a broker delivers no such topic; paho's matcher refuses them
        wanted = _expected_filters(message.topic)
        assert routes.handlers(message.topic) == [handlers[f] for f in wanted], (
            message.topic, wanted)
        # behind a message its topic could not journal, the rest waits for the broker
        refused = any(m.topic == message.topic and a == "not_journalled"
                      for m, a in batch[:n])
        for topic_filter in FILTERS:
            got = any(m is message for m in run.handled.get(topic_filter, []))
            assert not got or topic_filter in wanted, (message.topic, topic_filter)
            assert got or refused or topic_filter not in wanted, (message.topic, topic_filter)
    for topic_filter, handled in run.handled.items():
        for topic in {m.topic for m in handled}:
            order = [position[id(m)] for m in handled if m.topic == topic]
            assert order == sorted(order), (topic_filter, topic)
    # acknowledged: QoS 1 messages only, each once, in the order they came
    qos1 = [m for m in arrived if m.qos > 0]
    positions = iter(range(len(qos1)))
    for mid, qos in run.acked:
        assert qos == 1
        assert any(qos1[i].mid == mid for i in positions), ("out of order", mid)
    failed = sum(1 for m, a in batch if a == "fails" for _ in routes.handlers(m.topic))
    assert counters.get("handler_errors") <= failed
