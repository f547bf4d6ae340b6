"""The gateway's one connection to the MQTT broker, kept up for as long as the gateway runs.

aiomqtt 2.x does not reconnect by itself: `run` is a loop around `async with client` with
capped exponential backoff and jitter. After every (re)connect all subscriptions are renewed,
even though the session is persistent, because the broker may have lost it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.config import BROKER_MESSAGE_LIMIT, BrokerConfig
from gateway.counters import Counters
from gateway.journal import NotJournalledError
from gateway.waiting import first_of

log = logging.getLogger(__name__)

Handler = Callable[[aiomqtt.Message], Awaitable[None] | None]

PIPELINE = 256  # incoming QoS 1 messages in flight, unacknowledged
QOS0_BACKLOG = 10_000  # incoming QoS 0 messages queued or waiting before more are dropped
ROUTE_CACHE = 4096  # topics whose handlers are remembered
SUBSCRIBE_BATCH = 256  # topic filters per SUBSCRIBE packet
READ_PACE_S = 0.002  # at most one read of the connection per this, while messages stream in
REDELIVER_AFTER_S = 2.0  # a message not journalled is asked for again after this
MAX_PACKET = BROKER_MESSAGE_LIMIT + 65_536  # incoming packet bytes: payload, topic, header


def client_tls(config: BrokerConfig) -> ssl.SSLContext | None:
    """The TLS context for a broker: its certificate and host name are always verified."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(
        cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
    if config.tls.cert_file:
        context.load_cert_chain(str(config.tls.cert_file),
                                str(config.tls.key_file) if config.tls.key_file else None)
    return context


def _matches(levels: list[str], pattern: list[str]) -> bool:
    """MQTT filter matching on pre-split levels (`+` one level, `#` the rest)."""
    if pattern and pattern[0] == "$share":
        pattern = pattern[2:]  # $share/<group>/<filter>
    for i, want in enumerate(pattern):
        if want == "#":
            return True
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return False
    return len(levels) == len(pattern)


def _forget(chains: dict[str, asyncio.Task[None]], handlers: set[asyncio.Task[None]],
            topic: str, task: asyncio.Task[None]) -> None:
    handlers.discard(task)
    if chains.get(topic) is task:
        del chains[topic]


def _incoming_queue(counters: Counters) -> type[asyncio.Queue[aiomqtt.Message]]:
    class IncomingQueue(asyncio.Queue[aiomqtt.Message]):
        """QoS 1 is bounded by the broker's receive maximum; a QoS 0 flood is cut here."""

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if item.qos == 0 and self.qsize() >= QOS0_BACKLOG:
                counters.inc("dropped", cls="telemetry", reason="incoming_backlog")
                return
            super().put_nowait(item)

    return IncomingQueue


class _Inbound:
    """The broker connection's socket as paho reads it, with QoS 0 messages taken out.

    paho turns every PUBLISH into several objects (MQTT 5 properties, a message, its
    info with a lock), aiomqtt adds its own and a queue, and each message took a turn of
    the event loop: under a stream of telemetry that was most of the gateway's work.
    QoS 0 PUBLISH packets need no answer, so they are parsed here, in large reads, and
    handed straight to `deliver`; every other packet (acknowledgements, QoS 1 messages,
    pings, one with a topic alias) goes on to paho unchanged and in order. `pending()`
    tells the reader to come back while paho still has bytes to take.
    """

    CHUNK = 64 * 1024  # up to ~600 messages a read: bounds how long one turn takes

    def __init__(self, sock: Any, deliver: Callable[[aiomqtt.Message], None], *,
                 properties: bool) -> None:
        self._sock = sock
        self._deliver = deliver
        self._properties = properties  # MQTT 5: a property length follows the topic
        self._raw = bytearray()  # read, not yet a whole packet
        self._for_paho = bytearray()  # whole packets paho has yet to read

    def recv(self, bufsize: int) -> bytes:
        if not self._for_paho:
            data = self._sock.recv(self.CHUNK)  # BlockingIOError and the like pass on
            if not data:
                return b""  # closed: paho sees it
            self._raw += data
            self._split()
            if not self._for_paho:
                raise BlockingIOError  # all of it was QoS 0 messages, or a partial packet
        out = bytes(self._for_paho[:bufsize])
        del self._for_paho[:bufsize]
        return out

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)  # a TLS socket's own buffered bytes
        return len(self._for_paho) + (inner() if inner is not None else 0)

    def _split(self) -> None:
        buf = self._raw
        size = len(buf)
        at = 0
        while size - at >= 2:
            remaining = _varint(buf, at + 1, size)
            if remaining is None:
                if size - (at + 1) >= 4:  # malformed: paho says so and drops the connection
                    self._for_paho += buf[at:]
                    at = size
                break  # the length is not all here yet
            length, i = remaining
            end = i + length
            if end > size:
                break
            message = self._qos0(buf[at], buf, i, end) if buf[at] & 0xF6 == 0x30 else None
            if message is None:
                self._for_paho += buf[at:end]
            else:
                self._deliver(message)
            at = end
        del buf[:at]

    def _qos0(self, first: int, buf: bytearray, at: int, end: int) -> aiomqtt.Message | None:
        """The QoS 0 PUBLISH in buf[at:end] (after its fixed header), or None for paho."""
        if end - at < 2:
            return None
        name_end = at + 2 + (buf[at] << 8 | buf[at + 1])
        if name_end == at + 2 or name_end > end:
            return None  # a topic alias, or malformed: paho's business
        try:
            topic = buf[at + 2:name_end].decode()
        except UnicodeDecodeError:
            return None
        body = name_end
        if self._properties:
            properties = _varint(buf, body, end)
            if properties is None:
                return None
            length, body = properties
            body += length
            if body > end:
                return None
        return aiomqtt.Message(topic, bytes(buf[body:end]), 0, bool(first & 1), 0, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _PacedReads:
    """Reads the broker connection at most once per `pace_s` while messages stream in.

    Under a steady load every message arrives in a TCP segment of its own, and taking
    each in a turn of the event loop of its own costs far more than the message itself.
    When the last read is less than `pace_s` ago, reading pauses until then, so the next
    turn takes everything that came meanwhile; a message after a quiet spell is read at
    once. Replaces aiomqtt's reader for the socket, doing the same reads.
    """

    def __init__(self, client: aiomqtt.Client, loop: asyncio.AbstractEventLoop,
                 pace_s: float) -> None:
        self._client = client
        self._loop = loop
        self._pace_s = pace_s
        self._sock: Any = None
        self._last = -math.inf

    def opened(self, sock: Any) -> None:
        """On the loop, after aiomqtt registered its reader for `sock`: take its place."""
        fd = sock.fileno()
        if not self._current(sock):
            return  # closed again already
        self._sock = sock
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        now = self._loop.time()
        if now - self._last < self._pace_s:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_at(self._last + self._pace_s, self._resume, self._sock)
            return
        self._last = now
        self._read()

    def _resume(self, sock: Any) -> None:
        fd = sock.fileno()
        if not self._current(sock):
            return  # the connection closed during the pause; its reader is gone
        self._loop.add_reader(fd, self._readable)
        self._last = self._loop.time()
        self._read()

    def _current(self, sock: Any) -> bool:
        return self._client._client._sock is sock

    def _read(self) -> None:
        paho = self._client._client
        try:
            while True:  # everything read ahead, not one packet per turn
                paho.loop_read()
                pending = getattr(paho._sock, "pending", None)
                if pending is None or pending() <= 0:
                    break
        except Exception as exc:  # a broken connection: aiomqtt ends the session
            if not self._client._disconnected.done():
                self._client._disconnected.set_exception(exc)


def _add_writer(client: aiomqtt.Client, sock: Any) -> None:
    """On the loop: wait for `sock` to take paho's pending writes, as aiomqtt would, unless
    the connection closed since paho asked (its descriptor then is closed, or already the
    next connection's: a writer added to it failed with EBADF or fired for ever)."""
    paho = client._client
    fd: int = sock.fileno()
    if paho._sock is not sock:
        return

    def writable() -> None:
        try:
            paho.loop_write()
        except Exception as exc:  # a broken connection: aiomqtt ends the session
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)

    asyncio.get_running_loop().add_writer(fd, writable)


def _varint(buf: bytearray, at: int, end: int) -> tuple[int, int] | None:
    """The MQTT variable byte integer at buf[at:end] (1 to 4 bytes) and the index after it;
    None when it does not end within `end` or within 4 bytes."""
    value, shift = 0, 0
    while at < end and shift <= 21:
        digit = buf[at]
        value |= (digit & 0x7F) << shift
        shift += 7
        at += 1
        if not digit & 0x80:
            return value, at
    return None


def _publish_qos0(topic: str, properties: bytes, payload: bytes) -> bytes:
    """One MQTT PUBLISH packet, QoS 0, not retained (`properties`: b"\\x00" for MQTT 5)."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + properties + payload
    size = len(body)
    header = bytearray(b"\x30")
    while True:  # the remaining length, 7 bits a byte
        size, digit = divmod(size, 128)
        header.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(header) + body


def _no_delay(sock: Any) -> Any:
    """Alarms are small messages: with Nagle's algorithm on (paho leaves it on), one waits
    for the acknowledgement of the previous segment, up to the peer's delayed-ACK time."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Dispatch:
    """One connection's incoming messages, on their way to the handlers.

    A message's handlers run at once when nothing of its topic is still in flight; what
    they leave to await (journalling) runs as a task, and later messages of that topic
    wait for it: concurrent across topics (so journal commits group), in order within one.
    """

    def __init__(self, link: MqttLink) -> None:
        self._link = link
        self.chains: dict[str, asyncio.Task[None]] = {}
        self.handlers: set[asyncio.Task[None]] = set()
        # topics with a message not journalled: their later messages wait for the next
        # connection too, so the broker delivers them again in their order
        self.refused: set[str] = set()

    def accept(self, message: aiomqtt.Message) -> asyncio.Task[None] | None:
        """Handle `message`; the task still working on it, if any."""
        topic = message.topic.value
        if message.qos > 0 and topic in self.refused:
            return asyncio.create_task(_refuse(topic), name=f"gw.mqtt.in[{topic}]")
        previous = self.chains.get(topic)
        work = self._link._start(message) if previous is None else None
        if previous is None and work is None:
            return None
        task = asyncio.create_task(self._link._finish(previous, message, work),
                                   name=f"gw.mqtt.in[{topic}]")
        self.chains[topic] = task
        self.handlers.add(task)
        task.add_done_callback(functools.partial(_forget, self.chains, self.handlers, topic))
        return task

    def accept_qos0(self, message: aiomqtt.Message) -> None:
        """A QoS 0 message, as it is read: cut when too much is still being journalled."""
        if len(self.handlers) >= QOS0_BACKLOG:
            self._link._counters.inc("dropped", cls="telemetry", reason="incoming_backlog")
            return
        self.accept(message)

    async def close(self) -> None:
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)


async def _refuse(topic: str) -> None:
    raise NotJournalledError("earlier_refused", f"an earlier message on {topic} was not "
                             "journalled")


class LinkDownError(Exception):
    """The broker connection was lost before the broker acknowledged the publish."""


@dataclass(slots=True)
class Session:
    """One broker connection; `lost` completes when it ends."""

    number: int
    client: aiomqtt.Client
    lost: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())
    lost_at: float | None = None  # monotonic time the connection was lost


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes


class MqttLink:
    """Publishes with QoS and PUBACK confirmation, and dispatches subscribed messages."""

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        will: LastWill,
        clock: Clock,
        counters: Counters,
    ) -> None:
        self._config = config
        self._client_id = client_id
        self._will = will
        self._clock = clock
        self._counters = counters
        self._subscriptions: list[tuple[str, Handler]] = []
        self._on_connect: list[Callable[[bool], Awaitable[None]]] = []
        self._session_present = False  # what the broker said in its last CONNACK
        self._patterns: list[tuple[list[str], Handler]] = []
        self._routes: dict[str, list[Handler]] = {}  # topic -> handlers, filled as they come
        self._session: Session | None = None
        self._connected = asyncio.Event()
        self._sessions = 0
        self._previous_loss: float | None = None
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Register a handler; subscriptions are (re)made on every connection.

        A handler does what it can at once and returns None, or returns what is left to
        await (an async function's coroutine); later messages of the topic wait for that.
        """
        self._subscriptions.append((topic_filter, handler))
        self._patterns.append((topic_filter.split("/"), handler))
        self._routes.clear()

    def on_connect(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Await `callback(session_present)` on every connection, before any message of it
        is handled: False when the broker kept nothing of the gateway's session."""
        self._on_connect.append(callback)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def previous_loss(self) -> float | None:
        """When the connection before the current one was lost (None for the first)."""
        return self._previous_loss

    async def session(self) -> Session:
        """The current connection, waiting for one if the broker is away."""
        while True:
            await self._connected.wait()
            if self._session is not None and not self._session.lost.done():
                return self._session

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and return once the broker acknowledged it (for QoS 1).

        Raises LinkDownError when the connection drops first; the caller keeps the
        record and publishes it again on the next connection.
        """
        session = await self.session()
        await self.publish_on(session, topic, payload, qos=qos, retain=retain)

    async def publish_on(
        self, session: Session, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if session.lost.done():
            raise LinkDownError(topic)
        sending = asyncio.ensure_future(
            session.client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)
        )
        try:
            done, _ = await asyncio.wait(
                (sending, session.lost),
                timeout=self._config.publish_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            sending.cancel()  # a caller's own time limit: the publish does not go on alone
            raise
        if sending not in done:
            sending.cancel()
            self._counters.inc("mqtt_publish_failed", reason="timeout" if not done else "lost")
            raise LinkDownError(topic)
        try:
            sending.result()
        except aiomqtt.MqttError as exc:
            self._counters.inc("mqtt_publish_failed", reason="error")
            raise LinkDownError(topic) from exc

    async def run(self) -> None:
        """Connect, and reconnect after every loss, until cancelled."""
        while True:
            # a fresh client each time: paho would otherwise re-send its own in-flight
            # messages first, out of order with the sink's replay from the journal
            inbox = _Dispatch(self)
            client = self._make_client(inbox)
            try:
                async with client:
                    await self._serve(client, inbox)
            except aiomqtt.MqttError as exc:
                self._counters.inc("mqtt_disconnects")
                log.warning("MQTT broker %s:%d unavailable: %s", self._config.host,
                            self._config.port, exc)
            finally:
                self._connected.clear()
                if self._session is not None and not self._session.lost.done():
                    self._session.lost_at = self._clock.monotonic()
                    self._session.lost.set_result(None)
            delay = self._backoff.next_delay()
            log.info("reconnecting to the MQTT broker in %.1f s", delay)
            await self._clock.sleep(delay)

    async def close(self, final: tuple[str, bytes] | None = None) -> None:
        """Publish `final` (the gateway's `offline`) if connected; `run` is cancelled after."""
        if final is None or self._session is None or self._session.lost.done():
            return
        try:
            await self.publish_on(self._session, final[0], final[1], qos=1, retain=True)
        except LinkDownError:
            log.info("broker gone before the offline status was published; the will covers it")

    async def _serve(self, client: aiomqtt.Client, inbox: _Dispatch) -> None:
        for callback in self._on_connect:
            await callback(self._session_present)
        # many filters per SUBSCRIBE: one round trip for a whole site's device topics
        filters = [(topic_filter, 1) for topic_filter, _ in self._subscriptions]
        for first in range(0, len(filters), SUBSCRIBE_BATCH):
            await client.subscribe(filters[first:first + SUBSCRIBE_BATCH])
        self._sessions += 1
        if self._session is not None:
            self._previous_loss = self._session.lost_at
        self._session = Session(self._sessions, client)
        self._backoff.reset()
        self._connected.set()
        log.info("connected to MQTT broker %s:%d as %s (session %d)", self._config.host,
                 self._config.port, self._client_id, self._sessions)
        # QoS 0 messages are dispatched as they are read (_Inbound); what paho hands over
        # (QoS 1) comes here. QoS 1 acknowledgements go out in arrival order, each only
        # once its handlers have finished with the message.
        received: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None] | None]] = (
            asyncio.Queue(maxsize=PIPELINE))
        redeliver: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acker = asyncio.create_task(self._ack_in_order(client, received, inbox, redeliver),
                                    name="gw.mqtt.ack")
        reader = asyncio.create_task(self._read(client, inbox, received), name="gw.mqtt.read")
        try:
            await asyncio.wait((reader, redeliver), return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()  # the connection's end, as aiomqtt tells it
        finally:
            for task in (reader, acker):
                task.cancel()
            await asyncio.gather(reader, acker, inbox.close(), return_exceptions=True)
        # a clean DISCONNECT keeps the session: the broker delivers what was not
        # acknowledged again on the next connection
        raise aiomqtt.MqttError("ended to have unjournalled messages delivered again")

    @staticmethod
    async def _read(client: aiomqtt.Client, inbox: _Dispatch, received: asyncio.Queue[
            tuple[aiomqtt.Message, asyncio.Task[None] | None]]) -> None:
        async for message in client.messages:
            task = inbox.accept(message)
            if message.qos > 0:
                await received.put((message, task))  # back-pressure past PIPELINE
            elif len(inbox.handlers) >= PIPELINE:
                await asyncio.wait(inbox.handlers, return_when=asyncio.FIRST_COMPLETED)

    async def _finish(self, previous: asyncio.Task[None] | None, message: aiomqtt.Message,
                      work: list[tuple[Awaitable[None], Handler]] | None) -> None:
        if previous is not None:
            if not previous.done():
                await asyncio.wait([previous])
            if not previous.cancelled() and isinstance(previous.exception(),
                                                       NotJournalledError):
                await _refuse(message.topic.value)  # after it, in its order
            work = self._start(message)
        refused: NotJournalledError | None = None
        for awaitable, handler in work or ():
            try:
                await awaitable
            except NotJournalledError as exc:  # not received: the broker must keep it
                refused = exc
            except Exception:  # one bad handler must not take the connection down
                self._failed(message, handler)
        if refused is not None:
            raise refused

    async def _ack_in_order(
        self,
        client: aiomqtt.Client,
        received: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None] | None]],
        inbox: _Dispatch,
        redeliver: asyncio.Future[None],
    ) -> None:
        while True:
            message, task = await received.get()
            if task is not None and not task.done():
                await asyncio.wait([task])
            if task is not None and not task.cancelled() and isinstance(
                    task.exception(), NotJournalledError):
                self._not_acknowledged(message, inbox, redeliver)
            elif task is None or not task.cancelled():
                # a crash before this point makes the broker deliver the message again
                client._client.ack(message.mid, message.qos)

    def _not_acknowledged(self, message: aiomqtt.Message, inbox: _Dispatch,
                          redeliver: asyncio.Future[None]) -> None:
        """A message the gateway could not journal stays the broker's: it is not
        acknowledged, and the connection ends after REDELIVER_AFTER_S, because a broker
        delivers an unacknowledged message again only on a new connection."""
        topic = message.topic.value
        self._counters.inc("mqtt_not_acknowledged", topic=topic)
        if not inbox.refused:
            log.error("a message on %s could not be journalled and was not acknowledged; "
                      "the broker keeps it and delivers it again on a new connection in "
                      "%.1f s", topic, REDELIVER_AFTER_S)

            async def end() -> None:
                await self._clock.sleep(REDELIVER_AFTER_S)
                if not redeliver.done():
                    redeliver.set_result(None)

            timer = asyncio.create_task(end(), name="gw.mqtt.redeliver")
            inbox.handlers.add(timer)  # cancelled with the connection's handlers
            timer.add_done_callback(inbox.handlers.discard)
        inbox.refused.add(topic)

    async def publish_fast(self, session: Session, messages: Sequence[tuple[str, bytes]]
                           ) -> None:
        """QoS 0, for telemetry: no acknowledgement to wait for.

        The messages go out as one write of PUBLISH packets framed here: through paho one
        at a time, each cost a message object, a lock, a system call and a callback with
        freshly built MQTT 5 properties, several times the cost of the reading itself.
        Returns once the write reached the socket, so a slow broker still slows the caller.
        """
        if not messages:
            return
        paho = session.client._client
        if session.lost.done() or not paho.is_connected():
            raise LinkDownError(messages[0][0])
        properties = b"\x00" if paho._protocol == mqtt.MQTTv5 else b""
        blob = b"".join(_publish_qos0(topic, properties, payload) for topic, payload in messages)
        mid = paho._mid_generate()
        # aiomqtt's own bookkeeping: its on_publish callback sets the event once written
        written = asyncio.Event()
        session.client._pending_publishes[mid] = written
        try:
            if paho._packet_queue(mqtt.PUBLISH, blob, mid, 0, mqtt.MQTTMessageInfo(mid)):
                raise LinkDownError(messages[0][0])
            await first_of(written, session.lost)
        finally:
            session.client._pending_publishes.pop(mid, None)
        if not written.is_set():
            raise LinkDownError(messages[-1][0])

    def _start(self, message: aiomqtt.Message) -> list[tuple[Awaitable[None], Handler]] | None:
        """Call the message's handlers; what they returned to await, or None."""
        later: list[tuple[Awaitable[None], Handler]] | None = None
        for handler in self._route(message.topic.value):
            try:
                result = handler(message)
            except Exception:  # one bad handler must not take the connection down
                self._failed(message, handler)
                continue
            if result is not None:
                if later is None:
                    later = []
                later.append((result, handler))
        return later

    def _route(self, topic: str) -> list[Handler]:
        """The handlers of every subscription matching `topic`, in subscription order."""
        found = self._routes.get(topic)
        if found is None:
            # one dict lookup per message instead of matching every filter: a gateway
            # subscribes to one topic per MQTT device
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()  # bounded: topics come from outside
            levels = topic.split("/")
            found = [handler for pattern, handler in self._patterns
                     if _matches(levels, pattern)]
            self._routes[topic] = found
        return found

    def _failed(self, message: aiomqtt.Message, handler: Handler) -> None:
        # labelled by handler: a topic from outside would make a counter per topic
        self._counters.inc("handler_errors",
                           handler=str(getattr(handler, "__qualname__", "handler")))
        log.exception("handler %s for %s failed", getattr(handler, "__qualname__", handler),
                      message.topic)

    def _make_client(self, inbox: _Dispatch) -> aiomqtt.Client:
        cfg = self._config
        password = os.environ.get(cfg.password_env) if cfg.password_env else None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = cfg.session_expiry_s
        # the broker sends at most this many unacknowledged QoS 1 messages: flow control
        properties.ReceiveMaximum = PIPELINE
        # a broker without a message size limit of its own still sends nothing larger:
        # what lies between this and max_payload_bytes arrives to be counted and named
        properties.MaximumPacketSize = MAX_PACKET
        tls_context = client_tls(cfg)
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=self._client_id,
            username=cfg.username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            keepalive=cfg.keepalive_s,
            will=aiomqtt.Will(self._will.topic, self._will.payload, qos=1, retain=True),
            tls_context=tls_context,
            timeout=cfg.publish_timeout_s,
            queue_type=_incoming_queue(self._counters),
        )
        # paho would acknowledge an incoming QoS 1 message before we have stored it
        client._client.manual_ack_set(True)
        # the sinks publish whole batches at once: that is the plan, not a warning sign
        client.pending_calls_threshold = 4 * PIPELINE
        paho = client._client
        pacer = _PacedReads(client, asyncio.get_running_loop(), READ_PACE_S)
        aiomqtt_opened = paho.on_socket_open

        def opened(paho_client: mqtt.Client, userdata: Any, sock: Any) -> None:
            assert aiomqtt_opened is not None
            aiomqtt_opened(paho_client, userdata, sock)
            # queued after aiomqtt's own add_reader (paho may call this from a thread)
            pacer._loop.call_soon_threadsafe(pacer.opened, sock)

        paho.on_socket_open = opened
        aiomqtt_connected = paho.on_connect

        def connected(paho_client: mqtt.Client, userdata: Any, flags: Any, *args: Any) -> None:
            self._session_present = bool(flags.session_present)
            assert aiomqtt_connected is not None
            aiomqtt_connected(paho_client, userdata, flags, *args)

        paho.on_connect = connected

        def register_write(paho_client: mqtt.Client, userdata: Any, sock: Any) -> None:
            # paho may call this from a thread; the writer is added on the loop
            pacer._loop.call_soon_threadsafe(_add_writer, client, sock)

        paho.on_socket_register_write = register_write
        create_socket = paho._create_socket
        paho._create_socket = lambda: _Inbound(  # type: ignore[method-assign]
            _no_delay(create_socket()), inbox.accept_qos0, properties=True)
        return client
