"""The central store, written through the gateway's own store writer.

A batch is written until the store answers 2xx (capped backoff with jitter); only then does
the hub acknowledge its messages. Points carry the record's time and fixed tags, so a
redelivered record overwrites itself. As the gateway's store sink does, what the store
accepted within `replay_window_s` before a new connection is written again: a store that
crashed may have lost what it had answered 2xx to and not yet flushed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import StoreConfig
from gateway.core.counters import Counters
from gateway.sinks.store_writer import StoreWriteError, Writer

log = logging.getLogger(__name__)

KeepAlive = Callable[[], Awaitable[None]]


class CityStore:
    """Writes batches of line protocol; `write` returns once the store took the batch, or
    it refused the batch for good (counted: writing it again cannot help)."""

    def __init__(self, config: StoreConfig, writer: Writer, clock: Clock,
                 counters: Counters) -> None:
        self._config = config
        self._writer = writer
        self._clock = clock
        self._counters = counters
        self._backoff = Backoff(config.retry_min_s, config.retry_max_s)
        self._written: deque[tuple[float, list[str]]] = deque()  # (monotonic, lines)
        self._connections = 0

    async def write(self, lines: list[str], keep_alive: KeepAlive) -> None:
        """Write `lines`; while the store is down, `keep_alive` runs before each retry (it
        tells the stream the messages are still being worked on)."""
        if not lines:
            return
        while True:
            try:
                await self._writer.write(lines)
                break
            except StoreWriteError as exc:
                if not exc.retryable:
                    self._counters.inc("hub_store_refused", amount=len(lines))
                    log.error("store refused a batch of %d point(s): %s", len(lines), exc)
                    return
                self._counters.inc("hub_store_retries")
                delay = self._backoff.next_delay()
                log.warning("store write failed (%s); again in %.1f s", exc, delay)
                await keep_alive()
                await self._clock.sleep(delay)
        self._backoff.reset()
        self._counters.inc("hub_points_written", amount=len(lines))
        now = self._clock.monotonic()
        if self._connections and self._writer.connections != self._connections:
            await self._replay(now, keep_alive)
        self._connections = self._writer.connections
        self._written.append((now, lines))
        while self._written and self._written[0][0] < now - self._config.replay_window_s:
            self._written.popleft()

    async def _replay(self, now: float, keep_alive: KeepAlive) -> None:
        """A new connection: the store may have restarted and lost its last second."""
        recent = [line for at, lines in self._written
                  if at >= now - self._config.replay_window_s for line in lines]
        self._written.clear()
        if recent:
            self._counters.inc("hub_store_replayed", amount=len(recent))
            self._connections = self._writer.connections
            await self.write(recent, keep_alive)

    async def close(self) -> None:
        await self._writer.close()
