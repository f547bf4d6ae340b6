"""One connection to the broker: a paho client driven by the gateway's event loop.

paho's documented external-loop API does the integration: `on_socket_open` and
`on_socket_close` say when to watch the socket, `on_socket_register_write` and
`on_socket_unregister_write` when paho has bytes to send; the loop then calls `loop_read`,
`loop_write`, and `loop_misc` (keepalive) once a second. paho parses and frames every
packet; incoming QoS 1 messages are acknowledged with `ack` (manual acknowledgement),
which the dispatch calls only once the message's handlers are done with it.

Reading is paced: under a stream of messages, a turn of the loop per message costs far
more than the message, so a read within `pace_s` of the last one waits until then and
takes everything that came meanwhile; a message after a quiet spell is read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.link.tls import client_tls

log = logging.getLogger(__name__)

READ_BURST = 128  # packets read in one turn at most: bounds how long a turn takes (1024
# held the loop for 0.1-0.5 s while a queued backlog drained, and an alarm's alert with it)
MQTT_RECEIVE_MAXIMUM = 65_535  # a CONNACK without one: the protocol's default
MISC_EVERY_S = 1.0  # paho's keepalive bookkeeping (PINGREQ, a PINGRESP overdue)


class BrokerUnavailableError(Exception):
    """The connection to the broker could not be made, or ended."""


class PublishRefusedError(Exception):
    """paho did not take a message to send (the connection is gone or its queue is full)."""


def _more_to_read(sock: Any) -> bool:
    """Whether `sock` has bytes for paho right now, without taking them."""
    pending = getattr(sock, "pending", None)
    if pending is not None:  # TLS: records decrypted already; raw bytes wake the reader
        return bool(pending() > 0)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True  # paho's read sees the error and ends the connection
    return True  # a byte, or b"" at the end: paho's read sees either


def _settle(sent: deque[tuple[mqtt.MQTTMessageInfo, asyncio.Future[None]]]) -> None:
    """Complete the futures of the publishes paho has marked published, in order."""
    while sent:
        info, done = sent[0]
        if not done.done():  # else given up on (a timeout)
            if not info.is_published():
                return
            done.set_result(None)
        sent.popleft()


class BrokerConnection:
    """A single connection, never reused: a new one per (re)connect.

    `lost` completes when the connection ends, whoever ended it. Published messages are
    awaited through futures: QoS 1 until the broker's PUBACK, QoS 0 until written.
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
    ) -> None:
        self._config = config
        self._deliver = deliver
        # told whether the socket holds more than the gateway reads: a read that took a
        # whole burst and left more, or reading paused for back-pressure (True), or a read
        # that emptied the socket (False)
        self._behind = behind
        self._counters = counters
        self._pace_s = pace_s
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.why = ""  # why the connection ended
        self.session_present = False  # what the broker said in its CONNACK
        # unacknowledged QoS 1 messages the broker takes (its CONNACK's Receive Maximum)
        self.broker_receive_maximum = MQTT_RECEIVE_MAXIMUM
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._properties.SessionExpiryInterval = config.session_expiry_s
        # the broker sends at most this many unacknowledged QoS 1 messages: flow control
        self._properties.ReceiveMaximum = receive_maximum
        # a broker without a message size limit of its own still sends nothing larger
        self._properties.MaximumPacketSize = max_packet
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True, reconnect_on_failure=False)
        if config.username is not None:
            client.username_pw_set(config.username, password)
        tls = client_tls(config)
        if tls is not None:
            client.tls_set_context(tls)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.connect_timeout = config.publish_timeout_s
        client.max_inflight_messages_set(max_inflight)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._paho = client
        self._stream: Any = None  # the socket paho opened, once it is ours to watch
        self._opened: Any = None  # the socket paho opened, as its callback said
        self._fd = -1
        self._watching = False
        self._reader_on = False
        self._writer_on = False
        self._held = False  # reading stops: after the CONNACK, or for back-pressure
        self._paused = False
        self._pace_wait: asyncio.TimerHandle | None = None
        self._misc: asyncio.TimerHandle | None = None
        self._last_read = -math.inf
        # publishes in the order sent, each done once paho marks it published: QoS 1 on
        # its PUBACK (the broker acknowledges in order), QoS 0 once written. No on_publish
        # callback: paho would build MQTT 5 properties for it on every message written
        self._acks: deque[tuple[mqtt.MQTTMessageInfo, asyncio.Future[None]]] = deque()
        self._written: deque[tuple[mqtt.MQTTMessageInfo, asyncio.Future[None]]] = deque()
        self._activity = 0  # packets paho handed to a callback: a read that took one
        self._in_paho = False  # inside loop_read or loop_write
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}

    # the connection's life

    async def open(self) -> None:
        """Connect and wait for the broker's CONNACK; reading then stays held until
        `release`, so the caller sees the session state before any message."""
        cfg = self._config
        connecting = self._loop.run_in_executor(None, functools.partial(
            self._paho.connect, cfg.host, cfg.port, cfg.keepalive_s, clean_start=False,
            properties=self._properties))  # blocking: DNS, TCP, the TLS handshake
        try:
            await asyncio.wait_for(asyncio.shield(connecting), cfg.publish_timeout_s)
        except BaseException as exc:
            failed = (connecting.done() and not connecting.cancelled()
                      and connecting.exception() is exc)
            if not failed:  # the thread finishes on its own: its socket is closed then
                connecting.add_done_callback(self._abandoned)
            self.close()
            if failed and isinstance(exc, OSError | ValueError):  # refused, DNS, TLS
                raise BrokerUnavailableError(f"cannot connect: {exc}") from exc
            if isinstance(exc, TimeoutError):
                raise BrokerUnavailableError("no connection in time") from None
            raise
        self._watch()
        if self._stream is None:
            raise BrokerUnavailableError("the connection closed while it was made")
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
        self._sync_reader()
        self._loop.call_soon(self._kick)  # bytes read with the CONNACK wait in paho/TLS

    def pause_reading(self, paused: bool) -> None:
        """Stop reading the socket (back-pressure reaches the broker), or read again."""
        if paused == self._paused:
            return
        self._paused = paused
        self._sync_reader()
        if paused:
            self._behind(True)
        else:
            self._loop.call_soon(self._kick)

    def close(self) -> None:
        """End the connection now: a clean DISCONNECT when it is up (the broker keeps the
        session and drops the will), the socket closed in any case."""
        if self._paho.is_connected():
            self._paho.disconnect()
            self._write()
        if not self._watching and self._opened is not None:
            self._stream = self._opened  # opened by a connect the caller gave up on
        if self._stream is not None:
            sock = self._stream
            self._unwatch()
            with contextlib.suppress(OSError):
                sock.close()  # the DISCONNECT did not fit the socket's buffer
        self._lose("closed by the gateway")

    # what the caller sends

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[ReasonCode]:
        """Subscribe and wait for the SUBACK: one reason code per filter."""
        rc, mid = self._paho.subscribe(list(filters))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerUnavailableError(f"subscribe not sent: {mqtt.error_string(rc)}")
        answer: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = answer
        done, _ = await asyncio.wait((answer, self.lost), timeout=self._config.publish_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if answer not in done:
            raise BrokerUnavailableError(self.why or "no SUBACK in time")
        return answer.result()

    def unsubscribe(self, filters: Sequence[str]) -> None:
        """Send an UNSUBSCRIBE (not awaited: the broker handles it before what follows)."""
        rc, _ = self._paho.unsubscribe(list(filters))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BrokerUnavailableError(f"unsubscribe not sent: {mqtt.error_string(rc)}")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool
                ) -> asyncio.Future[None]:
        """Send a message; the future completes on its PUBACK (QoS 1) or once written."""
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishRefusedError(mqtt.error_string(info.rc))
        done: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            self._written.append((info, done))
        else:
            self._acks.append((info, done))
        self._write_now()
        return done

    def publish_batch(self, messages: Sequence[tuple[str, bytes]]) -> asyncio.Future[None]:
        """Send QoS 0 messages, not retained; the future completes once all are written."""
        publish = self._paho.publish
        info: mqtt.MQTTMessageInfo | None = None
        for topic, payload in messages:
            info = publish(topic, payload)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise PublishRefusedError(mqtt.error_string(info.rc))
        done: asyncio.Future[None] = self._loop.create_future()
        if info is None:
            done.set_result(None)
        else:
            self._written.append((info, done))
            self._write_now()
        return done

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a delivered message: the broker forgets it."""
        if not self.lost.done():
            self._paho.ack(mid, qos)

    # the socket on the event loop

    def _watch(self) -> None:
        """On the loop, once paho's connect returned: watch the socket it opened."""
        sock = self._opened
        if sock is None or self.lost.done():
            return
        self._stream = sock
        self._fd = sock.fileno()
        self._watching = True
        with contextlib.suppress(OSError, AttributeError):
            # alarms are small messages: with Nagle's algorithm on (paho leaves it on),
            # one waits for the acknowledgement of the previous segment
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sync_reader()
        if self._paho.want_write():
            self._sync_writer(True)
        self._misc = self._loop.call_later(MISC_EVERY_S, self._housekeeping)

    def _unwatch(self) -> None:
        if self._watching:
            if self._reader_on:
                self._loop.remove_reader(self._fd)
            if self._writer_on:
                self._loop.remove_writer(self._fd)
        self._reader_on = self._writer_on = self._watching = False
        self._stream = None
        for timer in (self._pace_wait, self._misc):
            if timer is not None:
                timer.cancel()
        self._pace_wait = self._misc = None

    def _sync_reader(self) -> None:
        want = (self._watching and not self._held and not self._paused
                and self._pace_wait is None)
        if want and not self._reader_on:
            self._loop.add_reader(self._fd, self._readable)
        elif self._reader_on and not want:
            self._loop.remove_reader(self._fd)
        self._reader_on = want

    def _sync_writer(self, want: bool) -> None:
        want = want and self._watching
        if want and not self._writer_on:
            self._loop.add_writer(self._fd, self._write)
        elif self._writer_on and not want:
            self._loop.remove_writer(self._fd)
        self._writer_on = want

    def _readable(self) -> None:
        now = self._loop.time()
        if now - self._last_read < self._pace_s:
            self._pace_wait = self._loop.call_at(self._last_read + self._pace_s, self._paced)
            self._sync_reader()
            return
        self._last_read = now
        self._read()

    def _paced(self) -> None:
        self._pace_wait = None
        self._last_read = self._loop.time()
        self._sync_reader()
        self._kick()

    def _kick(self) -> None:
        if self._reader_on:
            self._read()

    def _read(self) -> None:
        client = self._paho
        self._in_paho = True
        emptied = False
        try:
            for _ in range(READ_BURST):  # everything read ahead, not one packet per turn
                before = self._activity
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._reader_on:
                    break  # paho ended the connection (on_socket_close said so), or a pause
                # a read that handed over a message is followed by another without asking
                # the socket first: only the read that finds nothing costs a look
                if self._activity == before and not _more_to_read(self._stream):
                    emptied = True
                    break
            else:
                self._behind(True)  # a whole burst, and more waiting
        finally:
            self._in_paho = False
        if emptied and not self._paused:
            self._behind(False)
        _settle(self._acks)

    def _write_now(self) -> None:
        # an alarm goes out in this turn, not the next one of the loop's writer (a turn
        # under load takes milliseconds); inside paho's own calls the writer does it
        if self._writer_on and not self._in_paho:
            self._write()

    def _write(self) -> None:
        self._in_paho = True
        try:
            self._paho.loop_write()  # ends the connection itself on an error
        finally:
            self._in_paho = False
        _settle(self._written)

    def _housekeeping(self) -> None:
        self._misc = None
        self._paho.loop_misc()  # a PINGRESP overdue ends the connection
        if self._watching:
            self._misc = self._loop.call_later(MISC_EVERY_S, self._housekeeping)

    def _abandoned(self, connecting: asyncio.Future[Any]) -> None:
        if not connecting.cancelled():
            connecting.exception()  # retrieved: the caller was told already
        self.close()

    def _lose(self, why: str) -> None:
        if not self.lost.done():
            self.why = why
            self.lost.set_result(None)

    # paho's callbacks: on the loop, except those its connect makes (from its thread)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._opened = sock  # watched once connect returns (`_watch`, on the loop)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            self._opened = None  # closed inside connect: nothing was watched
            return
        if sock is self._stream:
            self._unwatch()  # before paho closes the descriptor
        self._lose("connection closed")

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._loop_thread and sock is self._stream:
            self._sync_writer(True)
        # from connect's thread: `_watch` adds the writer when paho wants one

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._loop_thread and sock is self._stream:
            self._sync_writer(False)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if self._connack.done():
            return
        self._activity += 1
        if reason.is_failure:
            self._connack.set_exception(BrokerUnavailableError(f"refused: {reason}"))
            return
        self.session_present = bool(flags.session_present)
        if properties is not None:
            self.broker_receive_maximum = int(getattr(properties, "ReceiveMaximum",
                                                      MQTT_RECEIVE_MAXIMUM))
        self._held = True  # the caller looks at the session before messages come in
        self._sync_reader()
        self._connack.set_result(None)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        self._lose(f"disconnected: {reason}")

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        self._activity += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._counters.inc("mqtt_rejected", reason="topic_not_utf8")
            self._counters.log_once(log, ("mqtt", "topic_not_utf8"), "a message whose topic "
                                    "is not UTF-8 was dropped; repeats are counted")
            if message.qos:
                self.ack(message.mid, message.qos)
            return
        try:
            self._deliver(Inbound(topic, bytes(message.payload), message.qos, message.retain,
                                  message.mid))
        except Exception:  # paho would end the read with it: the dispatch counts its own
            log.exception("dispatching a message on %s failed", topic)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        self._activity += 1
        answer = self._subacks.pop(mid, None)
        if answer is not None and not answer.done():
            answer.set_result(reasons)
