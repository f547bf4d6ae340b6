"""The broker connection's reading of a byte stream: packet boundaries, then the codec.

What arrives from the broker's socket is cut anywhere by TCP; the connection finds each
packet's end from its fixed header and hands whole packets to `mqtt5`. Fuzzed here: any
bytes, in any cuts, after the broker's CONNACK. Nothing escapes the protocol's callbacks;
the connection either reads on or ends itself ("malformed stream"); and a stream of
well-formed PUBLISH packets, however it is cut, is delivered whole and in order, each QoS 1
message acknowledged by its own packet id once the dispatch acknowledges it.

The input: one byte for the cut size (1-256), then the stream. The structured variant
encodes its messages with `mqtt5` and checks what comes out against them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mqtt5

from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.link.connection import BrokerConnection
from gateway.link.frames import MalformedPacketError, packet_bounds

CONNACK = mqtt5.ConnAckPacket().write()
MAX_PACKET = 4096


class _Socket(asyncio.Transport):
    """The transport's side the connection uses: what it writes, and whether it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _feed(stream: bytes, cut: int) -> tuple[list[Inbound], BrokerConnection, _Socket]:
    got: list[Inbound] = []
    connection = BrokerConnection(
        BrokerConfig(), "fuzz", None, None, got.append, Counters(), receive_maximum=256,
        max_inflight=10, max_packet=MAX_PACKET, pace_s=0.0)
    socket = _Socket()
    connection.connection_made(socket)
    connection.data_received(CONNACK)
    connection.release()
    for at in range(0, len(stream), cut):
        connection.data_received(stream[at:at + cut])
        await asyncio.sleep(0)
    for _ in range(len(stream) // 128 + 2):  # every burst's next turn
        await asyncio.sleep(0)
    for message in got:
        if message.qos:
            connection.ack(message.mid, message.qos)
    await asyncio.sleep(0)
    connection.close()
    return got, connection, socket


def mqtt_stream(data: bytes) -> None:
    """Arbitrary bytes from the broker: no exception escapes; what is delivered are whole
    PUBLISH packets of the stream's prefix, in order; a stream the connection refused
    ended it with a reason."""
    if not data:
        return
    cut = data[0] + 1
    stream = data[1:]
    got, connection, _ = asyncio.run(_feed(stream, cut))
    assert connection.lost.done()
    expected = _publishes(stream)
    assert [(m.topic, m.payload) for m in got] == expected[:len(got)]
    for message in got:
        assert message.qos in (0, 1, 2)
        assert (message.mid == 0) == (message.qos == 0)


def _publishes(stream: bytes) -> list[tuple[str, bytes]]:
    """The PUBLISH packets at the start of `stream` that the codec reads, in order."""
    out: list[tuple[str, bytes]] = []
    at = 0
    while at < len(stream):
        try:
            bounds = packet_bounds(stream, at, len(stream))
        except MalformedPacketError:
            break
        if bounds is None or at + bounds[1] > len(stream) or bounds[1] > MAX_PACKET:
            break
        try:
            packet, _ = mqtt5.read(memoryview(stream[at:at + bounds[1]]))
        except BaseException:  # also the codec's panics, as the connection takes them
            if stream[at] >> 4 != 3:
                break
            packet = None  # a PUBLISH the codec refuses is dropped, the stream goes on
        if isinstance(packet, mqtt5.PublishPacket):
            if int(packet.qos) and not packet.packet_id:
                break  # the connection ends itself
            out.append((packet.topic, packet.payload))
        at += bounds[1]
    return out


def publish_stream(messages: list[tuple[str, bytes, int]]) -> bytes:
    """The bytes a broker sends for `messages` (topic, payload, QoS), packet ids from 1."""
    return b"".join(
        mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS(qos),
                            packet_id=n + 1 if qos else None).write()
        for n, (topic, payload, qos) in enumerate(messages))


def mqtt_publishes(messages: list[tuple[str, bytes, int]], cut: int) -> None:
    """Well-formed messages cut anywhere: all delivered in order, each QoS 1 one
    acknowledged once by its packet id, and the connection still up until closed."""
    got, connection, socket = asyncio.run(_feed(publish_stream(messages), cut))
    assert connection.why == "closed by the gateway", connection.why
    assert [(m.topic, m.payload, m.qos) for m in got] == messages
    acks = []
    written = bytes(socket.written)
    at = 0
    while at < len(written):
        bounds = packet_bounds(written, at, len(written))
        assert bounds is not None
        packet, _ = mqtt5.read(memoryview(written[at:at + bounds[1]]))
        if isinstance(packet, mqtt5.PubAckPacket):
            acks.append(packet.packet_id)
        at += bounds[1]
    assert acks == [n + 1 for n, (_, _, qos) in enumerate(messages) if qos]
