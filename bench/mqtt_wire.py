"""Just enough MQTT 3.1.1 on a plain blocking socket for load generators and listeners.

The load side of a benchmark must cost little CPU and must not slow down when the system
under test does (open loop): writing pre-framed PUBLISH packets in bulk does both, which a
general client library, with its per-message bookkeeping, does not.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections import deque
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, DISCONNECT = (
    1, 2, 3, 4, 8, 9, 12, 14)


class WireError(Exception):
    """The broker refused us or sent something we cannot read."""


def varint(n: int) -> bytes:
    """MQTT's variable-length 'remaining length'."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(client_id: str, keepalive_s: int = 0) -> bytes:
    """CONNECT with a clean session; keepalive 0 turns the broker's idle timeout off."""
    body = _string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s)
    return _packet(CONNECT << 4, body + _string(client_id.encode()))


def publish_packet(topic: bytes, payload: bytes, *, qos: int = 0, retain: bool = False,
                   mid: int = 0) -> bytes:
    head = _string(topic) + (struct.pack("!H", mid) if qos else b"")
    return _packet((PUBLISH << 4) | (qos << 1) | int(retain), head + payload)


def subscribe_packet(mid: int, topic_filter: str, qos: int = 1) -> bytes:
    return _packet((SUBSCRIBE << 4) | 0x02,
                   struct.pack("!H", mid) + _string(topic_filter.encode()) + bytes([qos]))


def puback_packet(mid: int) -> bytes:
    return _packet(PUBACK << 4, struct.pack("!H", mid))


DISCONNECT_PACKET = bytes([DISCONNECT << 4, 0])


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


def parse_publish(flags: int, body: bytes) -> Publish:
    (length,) = struct.unpack_from("!H", body, 0)
    topic = body[2:2 + length].decode()
    qos = (flags >> 1) & 3
    at = 2 + length
    mid = 0
    if qos:
        (mid,) = struct.unpack_from("!H", body, at)
        at += 2
    return Publish(topic, body[at:], qos, bool(flags & 1), mid)


class PacketReader:
    """Splits a byte stream into (packet type, flags, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Every whole packet now in the buffer; a partial one waits for more data."""
        self._buffer += data
        buf = self._buffer
        out = []
        at = 0
        while True:
            if len(buf) - at < 2:
                break
            length, multiplier, i = 0, 1, at + 1
            while True:
                if i >= len(buf):
                    length = -1
                    break
                digit = buf[i]
                length += (digit & 0x7F) * multiplier
                multiplier *= 128
                i += 1
                if not digit & 0x80:
                    break
            if length < 0 or len(buf) - i < length:
                break
            first = buf[at]
            out.append((first >> 4, first & 0x0F, bytes(buf[i:i + length])))
            at = i + length
        del buf[:at]
        return out


class Connection:
    """A blocking MQTT connection: connect, then write bulk or read packets."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = PacketReader()
        self._ready: deque[tuple[int, int, bytes]] = deque()
        self.sock.sendall(connect_packet(client_id))
        kind, _, body = self.next_packet()
        if kind != CONNACK or len(body) < 2 or body[1] != 0:
            raise WireError(f"broker refused the connection: type {kind}, body {body!r}")

    def next_packet(self) -> tuple[int, int, bytes]:
        while not self._ready:
            data = self.sock.recv(65536)
            if not data:
                raise WireError("the broker closed the connection")
            self._ready.extend(self.reader.feed(data))
        return self._ready.popleft()

    def take_ready(self) -> list[tuple[int, int, bytes]]:
        """Packets already read past the last one `next_packet` returned."""
        out = list(self._ready)
        self._ready.clear()
        return out

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.sock.sendall(subscribe_packet(1, topic_filter, qos))
        kind, _, body = self.next_packet()
        if kind != SUBACK or body[-1] >= 0x80:
            raise WireError(f"subscription to {topic_filter} refused: {body!r}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(DISCONNECT_PACKET)
        self.sock.close()
