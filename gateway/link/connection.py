"""One connection to the broker: an asyncio protocol speaking MQTT 5 through `mqtt5`.

`mqtt5` (the sans-I/O codec under aiomqtt 3) reads and writes the packets; this module
owns the connection's life: the CONNECT and its CONNACK, keep-alive, packet ids and the
in-flight window of QoS 1 publishes, SUBSCRIBE and UNSUBSCRIBE, and the reading of the
socket. Incoming QoS 1 messages are acknowledged with `ack`, which the dispatch calls only
once the message's handlers are done with it.

Reading is bounded and paced: a turn of the loop handles at most `READ_BURST` packets (the
rest waits in the buffer, and the socket is not read while the buffer holds more than
`READ_AHEAD` bytes of them), and under a stream of messages the socket is read at most
once per `pace_s`, each read taking everything that came meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import sys
import termios
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import mqtt5

from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.core.right_of_way import RightOfWay
from gateway.link.frames import MalformedPacketError, packet_bounds
from gateway.link.tls import client_tls

log = logging.getLogger(__name__)

READ_BURST = 128  # packets handled in one turn at most: bounds how long a turn takes (1024
# held the loop for 0.1-0.5 s while a queued backlog drained, and an alarm's alert with it)
ASIDE_BURST = 16  # packets a turn while an alarm is on its way to the broker, on a session
# that may carry alarms too: its turns are short, and an alarm in the stream still comes in
READ_AHEAD = 256 * 1024  # bytes of whole packets waiting in the buffer: the socket waits
MQTT_RECEIVE_MAXIMUM = 65_535  # a CONNACK without one: the protocol's default
MISC_EVERY_S = 1.0  # keep-alive bookkeeping (a PINGREQ due, a PINGRESP overdue)
WRITE_HIGH = 256 * 1024  # bytes waiting to be written before QoS 0 publishers wait
FULL_READ = 64 * 1024  # a read of this much found the socket fuller still: the broker has
# a backlog for the gateway (asyncio reads up to 256 KiB at a time)
FAILURE = 0x80  # reason codes from this one on are failures
PUBLISH = 3
# a fixed header's first byte: the packet type and the QoS bits, and those of a QoS 0 PUBLISH
QOS0_MASK = 0xF6
QOS0_PUBLISH = 0x30


class BrokerUnavailableError(Exception):
    """The connection to the broker could not be made, or ended."""


class PublishRefusedError(Exception):
    """A message could not be sent (the connection is gone)."""


def reason_text(code: int) -> str:
    """A reason code as words: `NOT_AUTHORIZED` (135) -> "not authorized"."""
    name = getattr(code, "name", None)
    return f"{name.replace('_', ' ').lower()} ({int(code)})" if name else f"reason {code}"


def _publish_id(packet: bytearray, header: int) -> tuple[int, int] | None:
    """(qos, packet id) of a PUBLISH the codec refused, where its bytes still say them."""
    qos = (packet[0] >> 1) & 0x03
    if qos == 0 or header + 2 > len(packet):
        return None
    at = header + 2 + int.from_bytes(packet[header:header + 2], "big")
    if at + 2 > len(packet):
        return None
    return qos, int.from_bytes(packet[at:at + 2], "big")


class BrokerConnection(asyncio.Protocol):
    """A single connection, never reused: a new one per (re)connect.

    `lost` completes when the connection ends, whoever ended it. Published messages are
    awaited through futures: QoS 1 until the broker's PUBACK, QoS 0 until taken by the
    socket's buffer within its bound.
    """

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        will: tuple[str, bytes] | None,
        password: str | None,
        deliver: Callable[[Inbound], None],
        counters: Counters,
        *,
        receive_maximum: int,
        max_inflight: int,
        max_packet: int,
        pace_s: float,
        behind: Callable[[bool], None] = lambda behind: None,
        refused: Callable[[str, str], None] = lambda topic, reason: None,
        right_of_way: RightOfWay | None = None,
        aside_burst: int = ASIDE_BURST,
    ) -> None:
        self._config = config
        self._right_of_way = right_of_way
        self._aside_burst = aside_burst  # packets a turn while an alarm is on its way
        self._refused = refused  # told (topic, reason) of each QoS 1 publish refused
        self._deliver = deliver
        # told whether the broker holds more than the gateway reads: a read that took a
        # full chunk, a turn that took a whole burst and left more, or reading paused for
        # back-pressure (True), or a turn that handled every whole packet of a read that
        # was not a full chunk (False)
        self._behind = behind
        self._counters = counters
        self._pace_s = pace_s
        self._max_packet = max_packet
        self._max_inflight = max(1, max_inflight)
        self._keepalive = float(config.keepalive_s)
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.why = ""  # why the connection ended
        self.session_present = False  # what the broker said in its CONNACK
        # unacknowledged QoS 1 messages the broker takes (its CONNACK's Receive Maximum)
        self.broker_receive_maximum = MQTT_RECEIVE_MAXIMUM
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._connect = mqtt5.ConnectPacket(
            client_id,
            username=config.username,
            password=None if password is None or config.username is None
            else password.encode(),
            clean_start=False,
            will=None if will is None else mqtt5.Will(
                will[0], payload=will[1], qos=mqtt5.QoS.AT_LEAST_ONCE, retain=True),
            keep_alive=int(config.keepalive_s),
            session_expiry_interval=config.session_expiry_s,
            # the broker sends at most this many unacknowledged QoS 1 messages
            receive_max=receive_maximum,
            # a broker without a message size limit of its own still sends nothing larger
            max_packet_size=max_packet,
        ).write()
        self._transport: asyncio.Transport | None = None
        self._fd = -1  # the socket's descriptor, for FIONREAD
        self._buffer = bytearray()
        self._connected = False  # the CONNACK accepted the connection
        self._held = False  # handling stops: after the CONNACK, until `release`
        self._paused = False  # back-pressure from the dispatch
        self._reading = True  # the transport reads its socket
        self._starved = True  # the last turn ended on a packet not read whole yet
        self._full_read = False  # the last read took a full chunk: more waits in the socket
        self._pacing: asyncio.TimerHandle | None = None
        self._turn: asyncio.Handle | None = None  # the next turn of handling packets
        self._misc: asyncio.TimerHandle | None = None
        self._last_read = -math.inf
        self._sent_at = self._received_at = self._loop.time()
        self._ping_at: float | None = None
        self._next_id = 0
        self._inflight: dict[int, asyncio.Future[None]] = {}  # QoS 1 publishes sent
        self._inflight_topics: dict[int, str] = {}  # and their topics, to name a refusal
        self._queued: deque[tuple[str, bytes, bool, asyncio.Future[None]]] = deque()
        self._subacks: dict[int, asyncio.Future[list[mqtt5.SubAckReasonCode]]] = {}
        self._unsubscribes: set[int] = set()
        self._writing_paused = False
        self._written: list[asyncio.Future[None]] = []  # QoS 0, waiting for room
        self._acks = bytearray()  # acknowledgements written at the end of the turn
        self._corked = 0  # inside `corked`: packets wait in `_held_back`, then one write
        self._held_back: list[bytes] = []
        self._acks_due: asyncio.Handle | None = None

    # the connection's life

    async def open(self) -> None:
        """Connect and wait for the broker's CONNACK; handling then stays held until
        `release`, so the caller sees the session state before any message."""
        cfg = self._config
        tls = client_tls(cfg)
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: self, cfg.host, cfg.port, ssl=tls,
                server_hostname=cfg.host if tls is not None else None),
                cfg.publish_timeout_s)
        except TimeoutError:
            self.close()
            raise BrokerUnavailableError("no connection in time") from None
        except (OSError, ValueError) as exc:  # refused, DNS, TLS
            self.close()
            raise BrokerUnavailableError(f"cannot connect: {exc}") from exc
        except BaseException:
            self.close()
            raise
        if self.lost.done():
            raise BrokerUnavailableError(self.why or "the connection closed while it was made")
        self._send(self._connect)
        done, _ = await asyncio.wait((self._connack, self.lost), timeout=cfg.publish_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._connack in done:
            self._connack.result()  # the broker's refusal raises here
            return
        self.close()
        raise BrokerUnavailableError(self.why or "no CONNACK in time")

    def release(self) -> None:
        """Let messages in, after the caller has seen the CONNACK."""
        self._held = False
        self._schedule()

    def pause_reading(self, paused: bool) -> None:
        """Stop handling and reading (back-pressure reaches the broker), or go on."""
        if paused == self._paused:
            return
        self._paused = paused
        self._sync_reading()
        if paused:
            self._behind(True)
        else:
            self._schedule()

    def close(self) -> None:
        """End the connection now: a clean DISCONNECT when it is up (the broker keeps the
        session and drops the will), the socket closed in any case."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._flush_acks()
            if self._connected and not self.lost.done():
                transport.write(mqtt5.DisconnectPacket().write())
            transport.close()  # what is written goes out first
        self._stop()
        self._lose("closed by the gateway")

    # what the caller sends

    async def subscribe(self, filters: Sequence[tuple[str, int]]
                        ) -> list[mqtt5.SubAckReasonCode]:
        """Subscribe and wait for the SUBACK: one reason code per filter."""
        self._check_open()
        packet_id = self._packet_id()
        answer: asyncio.Future[list[mqtt5.SubAckReasonCode]] = self._loop.create_future()
        self._subacks[packet_id] = answer
        # retained messages keep their retain flag only when sent for the subscription:
        # a live message is never taken for a replayed state
        self._send(mqtt5.SubscribePacket(packet_id, [
            mqtt5.TopicFilter(pattern, max_qos=mqtt5.QoS(qos), retain_as_published=False)
            for pattern, qos in filters]).write())
        done, _ = await asyncio.wait((answer, self.lost), timeout=self._config.publish_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if answer not in done:
            self._subacks.pop(packet_id, None)
            raise BrokerUnavailableError(self.why or "no SUBACK in time")
        return answer.result()

    def unsubscribe(self, filters: Sequence[str]) -> None:
        """Send an UNSUBSCRIBE (not awaited: the broker handles it before what follows)."""
        self._check_open()
        packet_id = self._packet_id()
        self._unsubscribes.add(packet_id)
        self._send(mqtt5.UnsubscribePacket(packet_id, list(filters)).write())

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool
                ) -> asyncio.Future[None]:
        """Send a message; the future completes on its PUBACK (QoS 1) or once written."""
        self._check_open()
        done: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            self._send(mqtt5.PublishPacket(topic, payload, retain=retain).write())
            self._once_written(done)
        elif len(self._inflight) < self._max_inflight:
            self._send_reliably(topic, payload, retain, done)
        else:  # beyond the in-flight window: sent as PUBACKs make room, in order
            self._queued.append((topic, payload, retain, done))
        return done

    def publish_batch(self, messages: Sequence[tuple[str, bytes]]) -> asyncio.Future[None]:
        """Send QoS 0 messages, not retained, in one write; the future completes once the
        socket's buffer took them."""
        self._check_open()
        packet = mqtt5.PublishPacket
        done: asyncio.Future[None] = self._loop.create_future()
        if messages:
            self._send(b"".join([packet(topic, payload).write() for topic, payload in messages]))
        self._once_written(done)
        return done

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """What is sent inside goes out in one write at its end, not a write per packet
        (each a system call, and on loopback the broker's side of TCP as well)."""
        self._corked += 1
        try:
            yield
        finally:
            self._corked -= 1
            if not self._corked and self._held_back:
                data = b"".join(self._held_back)
                self._held_back.clear()
                self._send(data)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a delivered message: the broker forgets it (QoS 2: its PUBREC)."""
        if self.lost.done():
            return
        answer = mqtt5.PubAckPacket(mid) if qos == 1 else mqtt5.PubRecPacket(mid)
        self._acks += answer.write()
        if self._acks_due is None:
            self._acks_due = self._loop.call_soon(self._flush_acks)

    # asyncio's protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        self._fd = -1 if sock is None else sock.fileno()
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self._misc = self._loop.call_later(MISC_EVERY_S, self._housekeeping)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self._lose("connection closed" if exc is None else f"connection lost: {exc}")

    def data_received(self, data: bytes) -> None:
        now = self._received_at = self._loop.time()
        self._buffer += data
        self._full_read = len(data) >= FULL_READ
        if self._full_read:
            self._behind(True)
        if now - self._last_read < self._pace_s and self._pacing is None:
            # within the pace of the last read: the next one takes all that comes meanwhile
            self._pacing = self._loop.call_at(self._last_read + self._pace_s, self._paced)
        else:
            self._last_read = now
        self._handle_packets()

    def eof_received(self) -> bool | None:
        return False  # the transport closes itself

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        written, self._written = self._written, []
        for done in written:
            if not done.done():
                done.set_result(None)

    # reading

    def _nothing_unread(self) -> bool:
        """Whether the socket holds no bytes the transport has not read (FIONREAD)."""
        try:
            waiting = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True  # closed: nothing more comes
        return int.from_bytes(waiting, sys.byteorder, signed=True) <= 0

    def _paced(self) -> None:
        self._pacing = None
        self._last_read = self._loop.time()
        self._sync_reading()

    def _schedule(self) -> None:
        if self._turn is None and not self.lost.done():
            self._turn = self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn = None
        self._handle_packets()

    def _sync_reading(self) -> None:
        """Read the socket unless held back: paused, paced, or whole packets waiting."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        want = (not self._paused and self._pacing is None
                and (self._starved or len(self._buffer) < READ_AHEAD))
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _handle_packets(self) -> None:
        """Handle the whole packets in the buffer, at most a burst of them in this turn."""
        buffer = self._buffer
        end = len(buffer)
        at = taken = 0
        more = starved = False
        way = self._right_of_way
        burst = READ_BURST
        read, deliver, publish_type = mqtt5.read, self._deliver, mqtt5.PublishPacket
        if way is not None and way.held:
            burst = self._aside_burst
            if not burst:  # a session without alarms: none until the way is clear
                way.when_clear(self._schedule)
                self._sync_reading()
                return
        try:
            while not self._held and not self._paused and not self.lost.done():
                bounds = packet_bounds(buffer, at, end)
                if bounds is None or at + bounds[1] > end:
                    if bounds is not None and bounds[1] > self._max_packet:
                        raise MalformedPacketError(
                            f"a packet of {bounds[1]} bytes (at most {self._max_packet})")
                    starved = True
                    break
                if taken == burst:
                    more = True
                    break
                header, size = bounds
                packet = buffer[at:at + size]  # a copy: the buffer moves on
                at += size
                taken += 1
                if packet[0] & QOS0_MASK != QOS0_PUBLISH:
                    self._handle(packet, header)
                    continue
                # a QoS 0 message, most of what a loaded gateway reads: to the dispatch
                # from here, without the general path's steps
                try:
                    decoded = read(memoryview(packet))[0]
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # as in _handle
                    self._refused_publish(packet, header, f"{type(exc).__name__}: {exc}")
                    continue
                if type(decoded) is not publish_type:
                    self._handle(packet, header)  # not what its header said: the general way
                    continue
                try:
                    deliver(Inbound(decoded.topic, decoded.payload, 0, decoded.retain, 0))
                except Exception:  # the dispatch counts its own; the stream goes on
                    log.exception("dispatching a message on %s failed", decoded.topic)
        except MalformedPacketError as exc:
            self._counters.inc("mqtt_rejected", reason="malformed_stream")
            why = str(exc)
            log.error("the broker's stream cannot be read: %s; reconnecting", why)
            self._fail(f"malformed stream: {why}")
            return
        finally:
            if at:
                del buffer[:at]
        self._starved = starved
        if more:
            self._behind(True)
            self._schedule()
        elif not self._paused and not self._held and (not self._full_read
                                                       or self._nothing_unread()):
            self._behind(False)  # every whole packet handled, and the socket has no more
        self._sync_reading()

    def _handle(self, packet: bytearray, header: int) -> None:
        kind = packet[0] >> 4
        try:
            decoded, _ = mqtt5.read(memoryview(packet))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the codec's errors, and its panics (BaseException:
            # mqtt5 0.8 panics on a string property that is not UTF-8)
            error = f"{type(exc).__name__}: {exc}"
            if kind != PUBLISH:
                raise MalformedPacketError(f"packet type {kind}: {error}") from None
            self._refused_publish(packet, header, error)
            return
        if isinstance(decoded, mqtt5.PublishPacket):
            self._message(decoded)
        elif isinstance(decoded, mqtt5.PubAckPacket):
            self._puback(decoded)
        elif isinstance(decoded, mqtt5.PingRespPacket):
            self._ping_at = None
        elif isinstance(decoded, mqtt5.SubAckPacket):
            answer = self._subacks.pop(decoded.packet_id, None)
            if answer is not None and not answer.done():
                answer.set_result(list(decoded.reason_codes))
        elif isinstance(decoded, mqtt5.UnsubAckPacket):
            self._unsubscribes.discard(decoded.packet_id)
        elif isinstance(decoded, mqtt5.ConnAckPacket):
            self._connected_by(decoded)
        elif isinstance(decoded, mqtt5.PubRelPacket):  # a QoS 2 message's second half
            self._send(mqtt5.PubCompPacket(decoded.packet_id).write())
        elif isinstance(decoded, mqtt5.DisconnectPacket):
            reason = reason_text(decoded.reason_code)
            log.warning("the broker ended the connection: %s%s", reason,
                        f" ({decoded.reason_str})" if decoded.reason_str else "")
            self._fail(f"disconnected: {reason}")
        else:
            raise MalformedPacketError(f"a {type(decoded).__name__} from the broker")

    def _message(self, packet: mqtt5.PublishPacket) -> None:
        qos = int(packet.qos)
        if qos and not packet.packet_id:
            raise MalformedPacketError(f"a QoS {qos} message without a packet id")
        try:
            self._deliver(Inbound(packet.topic, packet.payload, qos, packet.retain,
                                  packet.packet_id or 0))
        except Exception:  # the dispatch counts its own; the stream goes on
            log.exception("dispatching a message on %s failed", packet.topic)

    def _refused_publish(self, packet: bytearray, header: int, error: str) -> None:
        """A PUBLISH the codec cannot read (a topic that is not UTF-8, a bad property):
        counted, and acknowledged so the broker does not send it again and again."""
        self._counters.inc("mqtt_rejected", reason="malformed_publish")
        self._counters.log_once(log, ("mqtt", "malformed_publish"), "a message the gateway "
                                "cannot read was dropped (%s); repeats are counted", error)
        known = _publish_id(packet, header)
        if known is not None:
            self.ack(known[1], known[0])

    def _connected_by(self, connack: mqtt5.ConnAckPacket) -> None:
        if self._connack.done():
            raise MalformedPacketError("a second CONNACK")
        if int(connack.reason_code) >= FAILURE:
            self._connack.set_exception(BrokerUnavailableError(
                f"refused: {reason_text(connack.reason_code)}"))
            return
        self._connected = True
        self.session_present = bool(connack.session_present)
        self.broker_receive_maximum = int(connack.receive_max)
        if connack.server_keep_alive is not None:
            self._keepalive = float(connack.server_keep_alive)
        self._held = True  # the caller looks at the session before messages come in
        self._connack.set_result(None)

    # writing

    def _check_open(self) -> None:
        transport = self._transport
        if transport is not None and transport.is_closing():
            # the transport says `connection_lost` in a later turn: a caller that retries
            # at once must see the connection lost now, or it would never give that turn
            self._lose("connection closing")
        if self.lost.done() or transport is None:
            raise PublishRefusedError(self.why or "not connected")

    def _send(self, data: bytes) -> None:
        if self._corked:
            self._held_back.append(data)
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self._sent_at = self._loop.time()

    def _once_written(self, done: asyncio.Future[None]) -> None:
        if self._writing_paused:
            self._written.append(done)
        else:
            done.set_result(None)

    def _flush_acks(self) -> None:
        self._acks_due = None
        if self._acks:
            acks, self._acks = bytes(self._acks), bytearray()
            self._send(acks)

    def _packet_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            packet_id = self._next_id
            if (packet_id not in self._inflight and packet_id not in self._subacks
                    and packet_id not in self._unsubscribes):
                return packet_id
        raise PublishRefusedError("no packet id free")

    def _send_reliably(self, topic: str, payload: bytes, retain: bool,
                       done: asyncio.Future[None]) -> None:
        packet_id = self._packet_id()
        self._inflight[packet_id] = done
        self._inflight_topics[packet_id] = topic
        self._send(mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE,
                                       retain=retain, packet_id=packet_id).write())

    def _puback(self, puback: mqtt5.PubAckPacket) -> None:
        done = self._inflight.pop(puback.packet_id, None)
        topic = self._inflight_topics.pop(puback.packet_id, None)
        if int(puback.reason_code) >= FAILURE:
            reason = reason_text(puback.reason_code)
            self._counters.inc("mqtt_publish_refused", reason=reason)
            self._counters.log_once(log, ("mqtt", "puback", reason), "the broker refused a "
                                    "message on %s: %s; repeats are counted", topic, reason)
            if topic is not None:
                self._refused(topic, reason)  # before its publisher hears the answer
        if done is not None and not done.done():
            # answered: whatever the answer, not sent again on this connection (the
            # `refused` callback decides what goes again, and when)
            done.set_result(None)
        while self._queued and len(self._inflight) < self._max_inflight:
            topic, payload, retain, waiting = self._queued.popleft()
            if not waiting.done():  # else given up on (a timeout)
                self._send_reliably(topic, payload, retain, waiting)

    # keep-alive and the end

    def _housekeeping(self) -> None:
        self._misc = None
        if self.lost.done():
            return
        now = self._loop.time()
        keepalive = self._keepalive
        if keepalive > 0 and self._connected:
            if self._ping_at is not None:
                # a PINGRESP waits in the socket while reading is held back: not overdue
                if now - self._ping_at >= keepalive and not self._paused:
                    log.warning("no PINGRESP from the broker within %.0f s", keepalive)
                    self._fail("no PINGRESP in time")
                    return
            elif now - self._sent_at >= keepalive or now - self._received_at >= keepalive:
                self._ping_at = now
                self._send(mqtt5.PingReqPacket().write())
        self._misc = self._loop.call_later(MISC_EVERY_S, self._housekeeping)

    def _fail(self, why: str) -> None:
        """End the connection for a reason of its own (no DISCONNECT: the broker sends
        the will, as for a connection that broke)."""
        self._lose(why)
        if self._transport is not None:
            self._transport.abort()
        self._stop()

    def _stop(self) -> None:
        for timer in (self._pacing, self._misc, self._turn, self._acks_due):
            if timer is not None:
                timer.cancel()
        self._pacing = self._misc = self._turn = self._acks_due = None

    def _lose(self, why: str) -> None:
        if not self.lost.done():
            self.why = why
            self.lost.set_result(None)
        if not self._connack.done():
            self._connack.set_exception(BrokerUnavailableError(why))
            self._connack.exception()  # retrieved: `open` says it in its own words
