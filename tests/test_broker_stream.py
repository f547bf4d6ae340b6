"""The connection's reading of the broker's stream, fed its bytes directly: what a real
broker never sends (a PUBLISH the codec cannot read) among messages it does."""

from __future__ import annotations

import mqtt5

from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.link.connection import BrokerConnection


def _publish(topic: str, payload: bytes, *, qos: int = 0, retain: bool = False,
             mid: int | None = None) -> bytes:
    return bytes(mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS(qos), retain=retain,
                                     packet_id=mid).write())


def _unreadable(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH whose topic is not UTF-8."""
    packet = bytearray(_publish(topic, payload))
    at = packet.index(topic.encode())
    packet[at + 1] = 0xFF
    return bytes(packet)


def _connection(delivered: list[Inbound], counters: Counters) -> BrokerConnection:
    return BrokerConnection(BrokerConfig(), "gw-test", None, None, delivered.append, counters,
                            receive_maximum=256, max_inflight=16, max_packet=1 << 20,
                            pace_s=0.0)


async def test_qos0_messages_are_delivered_in_order_with_their_flags() -> None:
    delivered: list[Inbound] = []
    connection = _connection(delivered, Counters())
    connection.data_received(_publish("dev/a", b"1") + _publish("dev/b", b"2", retain=True)
                             + _publish("dev/a", b"3"))
    assert delivered == [Inbound("dev/a", b"1", 0, False, 0),
                         Inbound("dev/b", b"2", 0, True, 0),
                         Inbound("dev/a", b"3", 0, False, 0)]


async def test_an_unreadable_qos0_publish_is_counted_and_the_stream_goes_on() -> None:
    delivered: list[Inbound] = []
    counters = Counters()
    connection = _connection(delivered, counters)
    # split mid-packet as TCP may: the packets are read whole all the same
    stream = _publish("dev/a", b"1") + _unreadable("dev/b", b"2") + _publish("dev/a", b"3")
    connection.data_received(stream[:12])
    connection.data_received(stream[12:])
    assert [m.payload for m in delivered] == [b"1", b"3"]
    assert counters.get("mqtt_rejected", reason="malformed_publish") == 1
    assert not connection.lost.done()


async def test_qos0_and_qos1_messages_interleaved_keep_their_order() -> None:
    delivered: list[Inbound] = []
    connection = _connection(delivered, Counters())
    connection.data_received(_publish("dev/a", b"1") + _publish("dev/a", b"2", qos=1, mid=7)
                             + _publish("dev/a", b"3"))
    assert [(m.payload, m.qos, m.mid) for m in delivered] == [
        (b"1", 0, 0), (b"2", 1, 7), (b"3", 0, 0)]
