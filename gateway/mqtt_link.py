"""The gateway's one connection to the MQTT broker, kept up for as long as the gateway runs.

`run` connects, and after every loss connects again with capped exponential backoff and
jitter. Each connection is a fresh MQTT 5 connection (gateway/link/connection.py) with a
persistent session; after every (re)connect all subscriptions are renewed, even though
the session is persistent, because the broker may have lost it. Incoming messages go
through gateway/link/dispatch.py, which acknowledges them only once they are journalled.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import BROKER_MESSAGE_LIMIT, BrokerConfig
from gateway.core.counters import Counters
from gateway.core.inbound import Handler, Inbound
from gateway.core.right_of_way import RightOfWay
from gateway.core.waiting import first_of
from gateway.link.connection import (
    ASIDE_BURST,
    FAILURE,
    BrokerConnection,
    BrokerUnavailableError,
    PublishRefusedError,
    reason_text,
)
from gateway.link.dispatch import IDLE, NO_BYTE_BOUND, PIPELINE, Backlog, Dispatch
from gateway.link.routes import Routes

__all__ = ["Handler", "Inbound", "LastWill", "LinkDownError", "MqttLink", "Session"]

log = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 256  # topic filters per SUBSCRIBE packet
READ_PACE_S = 0.002  # at most one read of the connection per this, while messages stream in
MAX_PACKET = BROKER_MESSAGE_LIMIT + 65_536  # incoming packet bytes: payload, topic, header


class _WithinLimit(Exception):
    """The broker's Receive Maximum is below the in-flight limit used to connect."""


class LinkDownError(Exception):
    """The broker connection was lost before the broker acknowledged the publish."""


@dataclass(slots=True)
class Session:
    """One broker connection; `lost` completes when it ends."""

    number: int
    connection: BrokerConnection
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
        will: LastWill | None,
        clock: Clock,
        counters: Counters,
        *,
        max_bytes: int = NO_BYTE_BOUND,
        behind: Callable[[], bool] | None = None,
        right_of_way: RightOfWay | None = None,
    ) -> None:
        self._config = config
        self._right_of_way = right_of_way  # an alarm on its way: a few packets a turn
        self._behind = behind  # what follows is too far behind: read no more meanwhile
        self._max_bytes = max_bytes  # payload bytes read and not yet handled, at most
        self._tight = False
        self._identifier = client_id
        self._will = will
        self._clock = clock
        self._counters = counters
        self._routes = Routes()
        self._on_connect: list[Callable[[bool], Awaitable[None]]] = []
        self._session: Session | None = None
        self._connected = asyncio.Event()
        self._sessions = 0
        self._previous_loss: float | None = None
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._elsewhere: list[str] = []
        self._inbox: Dispatch | None = None  # the current connection's
        # QoS 1 messages in flight: the configured number, or the broker's Receive Maximum
        # once a CONNACK said it was lower
        self.max_inflight = config.max_inflight
        # under a stream of messages the socket is read at most once per this (from the
        # next connection on); 0: whenever something came. The alarm lane keeps the pace
        # too: read at once, a lane flooded by one device cost its other alarms more
        # (docs/benchmarks.md, "Medians of 3: footprint, compound day and the floods")
        self.pace_s = READ_PACE_S
        # packets a turn while an alarm is on its way (0: none until it is published)
        self.aside_burst = ASIDE_BURST
        # told (topic, reason) of every QoS 1 publish the broker refused in its PUBACK,
        # before the publisher hears that it was answered
        self.refusals: list[Callable[[str, str], None]] = []

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Register a handler; subscriptions are (re)made on every connection.

        A handler does what it can at once and returns None, or returns what is left to
        await (an async function's coroutine); later messages of the topic wait for that.
        """
        self._routes.add(topic_filter, handler)

    def read_elsewhere(self, filters: Sequence[str]) -> None:
        """Topic filters another session reads: a session the broker kept from before
        (when this one read them too) is unsubscribed from them on connecting."""
        self._elsewhere = list(filters)

    def on_connect(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Await `callback(session_present)` on every connection, before any message of it
        is handled: False when the broker kept nothing of the gateway's session."""
        self._on_connect.append(callback)

    def backlog(self) -> Backlog:
        """What the current connection read and the gateway has not handled yet."""
        return IDLE if self._inbox is None else self._inbox.backlog()

    def tighten(self, tight: bool) -> None:
        """Near the memory ceiling: read only a few messages ahead of the handlers."""
        self._tight = tight
        if self._inbox is not None:
            self._inbox.tighten(tight)

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
            await self._connected.wait()  # returns at once, without a turn, while set
            current = self._session
            if (current is not None and not current.lost.done()
                    and not current.connection.lost.done()):
                return current
            # lost, and `connected` not cleared yet: that is done by the loss's callbacks,
            # which need the turn a caller retrying in a loop would otherwise never give
            await asyncio.sleep(0)

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
        try:
            sending = session.connection.publish(topic, payload, qos, retain)
        except PublishRefusedError as exc:
            self._counters.inc("mqtt_publish_failed", reason="error")
            raise LinkDownError(topic) from exc
        try:
            done, _ = await asyncio.wait(
                (sending, session.lost),
                timeout=self._config.publish_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            sending.cancel()  # a caller's own time limit: nothing waits for it any more
            raise
        if sending not in done:
            sending.cancel()
            self._counters.inc("mqtt_publish_failed", reason="timeout" if not done else "lost")
            raise LinkDownError(topic)

    async def publish_all(self, session: Session,
                          messages: Sequence[tuple[str, bytes, bool]]) -> None:
        """Publish (topic, payload, retain) messages at QoS 1, in this order and in one
        write; return once the broker acknowledged every one.

        Raises LinkDownError when the connection drops first or an acknowledgement does
        not come in time; the caller publishes them all again on the next connection.
        """
        if not messages:
            return
        everything = self._send_all(session, messages)
        try:
            done, _ = await asyncio.wait(
                (everything, session.lost),
                timeout=self._config.publish_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            everything.cancel()
            raise
        if everything not in done:
            everything.cancel()
            self._counters.inc("mqtt_publish_failed", reason="timeout" if not done else "lost")
            raise LinkDownError(messages[0][0])

    def _refused(self, topic: str, reason: str) -> None:
        for listener in self.refusals:
            listener(topic, reason)

    def _send_all(self, session: Session, messages: Sequence[tuple[str, bytes, bool]]
                  ) -> asyncio.Future[list[None]]:
        if session.lost.done():
            raise LinkDownError(messages[0][0])
        connection = session.connection
        try:
            with connection.corked():
                sending = [connection.publish(topic, payload, 1, retain)
                           for topic, payload, retain in messages]
        except PublishRefusedError as exc:
            self._counters.inc("mqtt_publish_failed", reason="error")
            raise LinkDownError(messages[0][0]) from exc
        return asyncio.gather(*sending)

    def send_all(self, session: Session, messages: Sequence[tuple[str, bytes, bool]]
                 ) -> asyncio.Future[list[None]]:
        """Publish (topic, payload, retain) messages at QoS 1, in this order and in one
        write, now; the future completes once the broker acknowledged every one, and is
        cancelled (counted as a timeout) when that takes longer than `publish_timeout_s`.
        It does not complete when the connection drops: `session.lost` says so.

        Raises LinkDownError when the connection is down already.
        """
        everything = self._send_all(session, messages) if messages else _done()
        if everything.done():
            return everything
        loop = asyncio.get_running_loop()

        def overdue() -> None:
            if not everything.done():
                self._counters.inc("mqtt_publish_failed", reason="timeout")
                everything.cancel()

        timer = loop.call_later(self._config.publish_timeout_s, overdue)
        everything.add_done_callback(lambda _: timer.cancel())
        return everything

    async def publish_fast(self, session: Session, messages: Sequence[tuple[str, bytes]]
                           ) -> None:
        """QoS 0, for telemetry: no acknowledgement to wait for.

        Returns once the messages were written to the socket, so a slow broker still
        slows the caller.
        """
        if not messages:
            return
        if session.lost.done():
            raise LinkDownError(messages[0][0])
        try:
            written = session.connection.publish_batch(messages)
        except PublishRefusedError as exc:
            raise LinkDownError(messages[0][0]) from exc
        try:
            await first_of(written, session.lost)
        finally:
            written.cancel()  # no-op once written
        if written.cancelled():
            raise LinkDownError(messages[-1][0])

    async def run(self) -> None:
        """Connect, and reconnect after every loss, until cancelled."""
        while True:
            try:
                await self._connection()
            except _WithinLimit:
                continue
            except BrokerUnavailableError as exc:
                self._counters.inc("mqtt_disconnects")
                log.warning("MQTT broker %s:%d unavailable: %s", self._config.host,
                            self._config.port, exc)
            finally:
                self._connected.clear()
                self._end_session()
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

    async def _connection(self) -> None:
        """One connection, from connect to its end (always by an exception)."""
        cfg = self._config
        password = os.environ.get(cfg.password_env) if cfg.password_env else None
        # a fresh connection each time: one that kept its own in-flight messages would send
        # them first, out of order with the sink's replay from the journal
        connection: BrokerConnection
        inbox = self._inbox = Dispatch(self._routes, self._counters, self._clock,
                         lambda mid, qos: connection.ack(mid, qos),
                         lambda paused: connection.pause_reading(paused),
                         max_bytes=self._max_bytes, tight=self._tight,
                         behind=self._behind)
        connection = BrokerConnection(
            cfg, self._identifier,
            None if self._will is None else (self._will.topic, self._will.payload), password,
            inbox.deliver, self._counters, receive_maximum=PIPELINE, max_packet=MAX_PACKET,
            max_inflight=self.max_inflight, pace_s=self.pace_s, behind=inbox.behind,
            refused=self._refused, right_of_way=self._right_of_way,
            aside_burst=self.aside_burst)
        try:
            await connection.open()
            if connection.broker_receive_maximum < self.max_inflight:
                # nothing was sent or read on this connection yet: a clean DISCONNECT and
                # a new connection within the broker's limit, at once
                self.max_inflight = max(connection.broker_receive_maximum, 1)
                log.info("the MQTT broker takes %d unacknowledged messages at most: "
                         "connecting again within that", self.max_inflight)
                raise _WithinLimit
            for callback in self._on_connect:
                await callback(connection.session_present)
            if connection.session_present:
                for first in range(0, len(self._elsewhere), SUBSCRIBE_BATCH):
                    connection.unsubscribe(self._elsewhere[first:first + SUBSCRIBE_BATCH])
            connection.release()
            # many filters per SUBSCRIBE: one round trip for a whole site's device topics
            filters = [(topic_filter, 1) for topic_filter in self._routes.filters]
            for first in range(0, len(filters), SUBSCRIBE_BATCH):
                batch = filters[first:first + SUBSCRIBE_BATCH]
                reasons = await connection.subscribe(batch)
                for (topic_filter, _), reason in zip(batch, reasons, strict=False):
                    if int(reason) >= FAILURE:
                        self._counters.inc("mqtt_subscribe_refused")
                        log.error("the broker refused the subscription to %s: %s",
                                  topic_filter, reason_text(reason))
            self._sessions += 1
            if self._session is not None:
                self._previous_loss = self._session.lost_at
            session = Session(self._sessions, connection)
            self._session = session
            connection.lost.add_done_callback(lambda _: self._end_session(session))
            self._backoff.reset()
            self._connected.set()
            log.info("connected to MQTT broker %s:%d as %s (session %d)", cfg.host,
                     cfg.port, self._identifier, self._sessions)
            await first_of(connection.lost, inbox.redeliver)
            if connection.lost.done():
                raise BrokerUnavailableError(connection.why)
            # a clean DISCONNECT keeps the session: the broker delivers what was not
            # acknowledged again on the next connection
            raise BrokerUnavailableError("ended to have unjournalled messages delivered again")
        finally:
            await inbox.close()
            connection.close()
            self._inbox = None  # what it held is the broker's again

    def _end_session(self, session: Session | None = None) -> None:
        session = session or self._session
        if session is self._session:
            self._connected.clear()
        if session is not None and not session.lost.done():
            session.lost_at = self._clock.monotonic()
            session.lost.set_result(None)


def _done() -> asyncio.Future[list[None]]:
    done: asyncio.Future[list[None]] = asyncio.get_running_loop().create_future()
    done.set_result([])
    return done
