"""Connections to the HTTP push port: how many, from where, and for how long.

Anyone who reaches the push port holds a file descriptor of the gateway from the moment
the connection opens, long before a token is checked, and the gateway's broker link,
journal and serial ports draw on the same limit. So every connection is admitted within
a cap per source address and a cap in all; at the total cap, the connection that has
waited longest for a request is closed to make room, so idle connections cannot lock a
device out. A connection that carried a push the gateway took (a device's or a platform's)
is closed for room only when no other is waiting: a flood of new connections does not
close the keep-alive connections of the devices, whose next push would then be lost on
the way and have to be sent again. A connection must send a complete request head within
`header_timeout_s` of opening and within `idle_timeout_s` of the answer to its previous
request, or it is closed. Refusals, evictions and timeouts are counted and logged at most
once a minute per reason.

With TLS, a connection is admitted (and capped) as soon as it opens, before its handshake,
so that connections stuck in a handshake count like any other; the handshake is part of the
time a connection has to send its first request head. A failed handshake is counted and
logged like the rest.

The network timeouts are physical and run on the event loop's time; the log pacing runs
on the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Final

from gateway.core.clock import Clock
from gateway.core.config import HttpServerConfig
from gateway.core.counters import Counters

log = logging.getLogger(__name__)

LOG_EVERY_S: Final = 60.0


class PushConnections:
    """The protocol factory of the push port: wraps each aiohttp protocol in an admission."""

    def __init__(self, config: HttpServerConfig, counters: Counters, clock: Clock,
                 protocol: Callable[[], asyncio.Protocol],
                 tls: ssl.SSLContext | None = None) -> None:
        self._config = config
        self._counters = counters
        self._clock = clock
        self.protocol = protocol
        self.tls = tls
        self._handshakes: set[asyncio.Task[None]] = set()
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        # connections waiting for a request head, the longest waiting first: those that
        # never carried a push the gateway took, and those that did (a device's)
        self._waiting: dict[_Connection, None] = {}
        self._waiting_known: dict[_Connection, None] = {}
        self._per_address: Counter[str] = Counter()

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    @property
    def open(self) -> int:
        """Connections admitted and not closed."""
        return len(self._open)

    @property
    def idle(self) -> int:
        """Connections waiting for a request head (the ones that can be closed for room)."""
        return len(self._waiting) + len(self._waiting_known)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """A request head arrived on `transport`: it is no longer idle."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            self._unwait(connection)
            connection.requests += 1
            connection.closes_at(None)

    def request_finished(self, transport: asyncio.BaseTransport | None,
                         taken: bool = False) -> None:
        """The request on `transport` was answered (`taken`: it was a push the gateway
        took, so the connection is a device's): the next one has `idle_timeout_s`."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.known = connection.known or taken
            self._wait(connection, self._config.idle_timeout_s)

    def close(self) -> None:
        """Close every connection still open."""
        for handshake in self._handshakes:
            handshake.cancel()
        for connection in list(self._open.values()):
            self._drop(connection)

    # -- TLS (called by each connection) --------------------------------------------------

    def handshake(self, connection: _Connection, context: ssl.SSLContext) -> None:
        task = asyncio.get_running_loop().create_task(
            connection.secure(context, self._config.header_timeout_s),
            name=f"http_push.tls[{connection.address}]")
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    def secured(self, connection: _Connection, transport: asyncio.Transport) -> bool:
        """The handshake of `connection` succeeded: it goes on over `transport`. False if it
        was closed meanwhile."""
        if connection.transport is None or connection.transport not in self._open:
            transport.abort()
            return False
        del self._open[connection.transport]
        connection.transport = transport
        self._open[transport] = connection
        return True

    def handshake_failed(self, connection: _Connection, exc: BaseException | None) -> None:
        if connection.transport is None or connection.transport not in self._open:
            return  # closed by a timeout or for room: counted there
        self._close(connection, "tls_handshake", "TLS handshake with %s failed: %s",
                    connection.address, _why(exc))

    # -- admission (called by each connection) ------------------------------------------

    def admit(self, connection: _Connection) -> bool:
        config = self._config
        address = connection.address
        if self._per_address[address] >= config.max_connections_per_address:
            self._refuse("per_address", "connection from %s refused: %d open from that "
                         "address, the most allowed (http.max_connections_per_address)",
                         address, self._per_address[address])
            return False
        if len(self._open) >= config.max_connections:
            oldest = next(iter(self._waiting), None) or next(iter(self._waiting_known), None)
            if oldest is None:  # every connection is in the middle of a request
                self._refuse("total", "connection from %s refused: %d open, the most "
                             "allowed (http.max_connections)", address, len(self._open))
                return False
            self._close(oldest, "evicted", "connection from %s closed after waiting "
                        "longest for a request, to make room for one from %s "
                        "(http.max_connections %d reached)", oldest.address, address,
                        config.max_connections)
        assert connection.transport is not None
        self._open[connection.transport] = connection
        self._per_address[address] += 1
        self._wait(connection, config.header_timeout_s)
        return True

    def head_arrived(self, connection: _Connection) -> None:
        """A complete request head arrived on `connection`: it keeps its timer (until its
        handler starts) but is no longer closed for room."""
        self._unwait(connection)

    def _wait(self, connection: _Connection, timeout_s: float) -> None:
        connection.waits_for_head()
        self._unwait(connection)
        (self._waiting_known if connection.known else self._waiting)[connection] = None
        loop = asyncio.get_running_loop()
        connection.closes_at(loop.call_later(timeout_s, self._timed_out, connection))

    def _timed_out(self, connection: _Connection) -> None:
        if connection.requests:
            self._close(connection, "idle_timeout", "connection from %s closed: no request "
                        "within %s s of the previous answer (http.idle_timeout_s)",
                        connection.address, self._config.idle_timeout_s)
        else:
            self._close(connection, "header_timeout", "connection from %s closed: no "
                        "complete request head within %s s (http.header_timeout_s)",
                        connection.address, self._config.header_timeout_s)

    def _refuse(self, reason: str, msg: str, *args: object) -> None:
        self._counters.inc("http_connections_refused", reason=reason)
        total = self._counters.get("http_connections_refused", reason=reason)
        self._counters.log_every(log, ("http_connections", reason), self._clock.monotonic(),
                                 LOG_EVERY_S, msg + "; %d refused so far, logged at most "
                                 "once a minute", *args, total)

    def _close(self, connection: _Connection, reason: str, msg: str, *args: object) -> None:
        self._counters.inc("http_connections_closed", reason=reason)
        total = self._counters.get("http_connections_closed", reason=reason)
        self._counters.log_every(log, ("http_connections", reason), self._clock.monotonic(),
                                 LOG_EVERY_S, msg + "; %d so far, logged at most once a "
                                 "minute", *args, total)
        self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        self.release(connection)
        if connection.transport is not None:
            connection.transport.abort()

    def release(self, connection: _Connection) -> None:
        if connection.transport is None or self._open.pop(connection.transport, None) is None:
            return
        self._unwait(connection)
        connection.closes_at(None)
        self._per_address[connection.address] -= 1
        if self._per_address[connection.address] <= 0:
            del self._per_address[connection.address]


    def _unwait(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)
        self._waiting_known.pop(connection, None)


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "the connection closed"
    reason = getattr(exc, "reason", None)  # ssl.SSLError's short name, e.g. HTTP_REQUEST
    return str(reason) if reason else (str(exc) or type(exc).__name__)


class _Connection(asyncio.Protocol):
    """One connection: admitted, it hands everything to its aiohttp protocol."""

    def __init__(self, owner: PushConnections) -> None:
        self._owner = owner
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.address = "unknown"
        self.requests = 0
        self.known = False  # it carried a push the gateway took
        self._waiting_head = True  # no complete request head since the last answer
        self._tail = b""  # the last bytes received, for a head's end split between reads

    def waits_for_head(self) -> None:
        self._waiting_head = True
        self._tail = b""

    def closes_at(self, timer: asyncio.TimerHandle | None) -> None:
        """Replace the timer that closes the connection while it is idle; None: none."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = timer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.address = str(peer[0])
        if not self._owner.admit(self):
            transport.abort()
            return
        if self._owner.tls is not None:
            # nothing is read before the handshake takes the transport over
            transport.pause_reading()
            self._owner.handshake(self, self._owner.tls)
            return
        self._inner = self._owner.protocol()
        self._inner.connection_made(transport)

    async def secure(self, context: ssl.SSLContext, timeout_s: float) -> None:
        """Run the TLS handshake; on success, serve the connection over TLS."""
        assert self.transport is not None
        try:
            secured = await asyncio.get_running_loop().start_tls(
                self.transport, self, context, server_side=True,
                ssl_handshake_timeout=timeout_s)
        except Exception as exc:  # anything a peer can cause: counted, logged paced
            self._owner.handshake_failed(self, exc)
            return
        if secured is None:  # closed during the handshake
            self._owner.handshake_failed(self, None)
            return
        if self._owner.secured(self, secured):
            self._inner = self._owner.protocol()
            self._inner.connection_made(secured)

    def data_received(self, data: bytes) -> None:
        if self._waiting_head and b"\r\n\r\n" in self._tail + data:
            # a request head is complete: its push is under way even before aiohttp hands
            # it to a handler, so the connection is no longer one to close for room
            self._waiting_head = False
            self._owner.head_arrived(self)
        self._tail = data[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.release(self)
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)


class PushSlots:
    """Pushes handled at once: `total`, of which `reserved` only for alarm devices."""

    def __init__(self, total: int, reserved: int) -> None:
        self._total = total
        self._reserved = reserved
        self.in_use = 0

    def take(self, alarm: bool) -> bool:
        """Take a slot for a push of an alarm device (`alarm`) or another; False: none."""
        if self.in_use >= self._total - (0 if alarm else self._reserved):
            return False
        self.in_use += 1
        return True

    def give(self) -> None:
        self.in_use -= 1


class PacedLog(logging.Filter):
    """Lets each message template (or those in `only`) through at most once a minute; counts
    the rest.

    For loggers that libraries write to on behalf of whoever reaches the port: aiohttp's
    server logger (a bad request is logged with a traceback) and asyncio's (a failed
    accept() is logged once per pending connection).
    """

    def __init__(self, name: str, counters: Counters, clock: Clock,
                 only: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._name = name
        self._counters = counters
        self._clock = clock
        self._only = only  # the messages paced (by their start); empty: all
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg).split("\n", 1)[0]
        if self._only and not key.startswith(self._only):
            return True
        now = self._clock.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            self._counters.inc("log_suppressed", logger=self._name)
            return False
        self._last[key] = now
        return True
