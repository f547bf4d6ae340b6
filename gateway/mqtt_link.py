"""The gateway's one connection to the MQTT broker, kept up for as long as the gateway runs.

aiomqtt 2.x does not reconnect by itself: `run` is a loop around `async with client` with
capped exponential backoff and jitter. After every (re)connect all subscriptions are renewed,
even though the session is persistent, because the broker may have lost it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.config import BrokerConfig
from gateway.counters import Counters

log = logging.getLogger(__name__)

Handler = Callable[[aiomqtt.Message], Awaitable[None]]

PIPELINE = 256  # incoming QoS 1 messages in flight, unacknowledged
QOS0_BACKLOG = 10_000  # incoming QoS 0 messages queued before more are dropped


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
        self._session: Session | None = None
        self._connected = asyncio.Event()
        self._sessions = 0
        self._previous_loss: float | None = None
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Register a handler; subscriptions are (re)made on every connection."""
        self._subscriptions.append((topic_filter, handler))

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
        done, _ = await asyncio.wait(
            (sending, session.lost),
            timeout=self._config.publish_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
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
            client = self._make_client()
            try:
                async with client:
                    await self._serve(client)
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

    async def _serve(self, client: aiomqtt.Client) -> None:
        for topic_filter, _ in self._subscriptions:
            await client.subscribe(topic_filter, qos=1)
        self._sessions += 1
        if self._session is not None:
            self._previous_loss = self._session.lost_at
        self._session = Session(self._sessions, client)
        self._backoff.reset()
        self._connected.set()
        log.info("connected to MQTT broker %s:%d as %s (session %d)", self._config.host,
                 self._config.port, self._client_id, self._sessions)
        # messages are handled concurrently across topics (so their journal commits group)
        # and in order within a topic; acknowledgements go out in arrival order, each only
        # once its handler has journalled the message
        received: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None]]] = asyncio.Queue(
            maxsize=PIPELINE)
        chains: dict[str, asyncio.Task[None]] = {}
        handlers: set[asyncio.Task[None]] = set()
        acker = asyncio.create_task(self._ack_in_order(client, received), name="gw.mqtt.ack")
        try:
            async for message in client.messages:
                topic = str(message.topic)
                task = asyncio.create_task(self._handle_after(chains.get(topic), message),
                                           name=f"gw.mqtt.in[{topic}]")
                chains[topic] = task
                handlers.add(task)
                task.add_done_callback(functools.partial(_forget, chains, handlers, topic))
                await received.put((message, task))  # back-pressure past PIPELINE messages
        finally:
            acker.cancel()
            for task in handlers:
                task.cancel()
            await asyncio.gather(acker, *handlers, return_exceptions=True)

    async def _handle_after(self, previous: asyncio.Task[None] | None,
                            message: aiomqtt.Message) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self._dispatch(message)

    @staticmethod
    async def _ack_in_order(
        client: aiomqtt.Client,
        received: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None]]],
    ) -> None:
        while True:
            message, task = await received.get()
            if not task.done():
                await asyncio.wait([task])
            if message.qos > 0 and not task.cancelled():
                # a crash before this point makes the broker deliver the message again
                client._client.ack(message.mid, message.qos)

    async def publish_fast(self, session: Session, topic: str, payload: bytes) -> None:
        """QoS 0, for telemetry: no acknowledgement to wait for."""
        if session.lost.done():
            raise LinkDownError(topic)
        try:
            await session.client.publish(topic, payload, qos=0)
        except aiomqtt.MqttError as exc:
            raise LinkDownError(topic) from exc

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        for topic_filter, handler in self._subscriptions:
            if message.topic.matches(topic_filter):
                try:
                    await handler(message)
                except Exception:  # one bad handler must not take the connection down
                    self._counters.inc("handler_errors", topic=str(message.topic))
                    log.exception("handler for %s failed", message.topic)

    def _make_client(self) -> aiomqtt.Client:
        cfg = self._config
        password = os.environ.get(cfg.password_env) if cfg.password_env else None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = cfg.session_expiry_s
        # the broker sends at most this many unacknowledged QoS 1 messages: flow control
        properties.ReceiveMaximum = PIPELINE
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
        return client
