"""Pushes journalled events and alerts, and buffered telemetry, to the time-series store.

Batches are bounded by size and by time; a batch holding an alarm goes at once. A failed
write is retried with capped backoff and jitter, for as long as it takes: the journal
cursor moves only after the store answered 2xx, so nothing accepted is ever dropped here.

A 2xx does not mean the point is on the store's disk: VictoriaMetrics keeps about the last
second in memory. When a write goes over a new connection (the store may have restarted),
the journal records written within `replay_window_s` before are written again; a point
overwrites itself, so a needless replay costs only the write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import StoreConfig
from gateway.core.counters import Counters
from gateway.core.model import DeliveryClass, Record, delivery_class
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.core.waiting import Signal, first_of
from gateway.journal import Batch, Journal
from gateway.sinks.points import PointMaker
from gateway.sinks.store_writer import StoreWriteError, Writer

log = logging.getLogger(__name__)

CONSUMER = "store"
LINES_PER_TURN = 250  # about 2.5 ms of work
URGENT_GAP_S = 0.05  # alarm batches in a storm: one write per this; the store shows them later
URGENT_BURST = 4  # alarm writes that go at once before the storm pace applies


@dataclass(frozen=True, slots=True)
class _Written:
    """Journal records (after, upto] the store accepted at `at` (monotonic time)."""

    at: float
    after: int
    upto: int


class StoreSink:
    """The store's consumer of the journal and of the telemetry buffer."""

    def __init__(
        self,
        config: StoreConfig,
        writer: Writer,
        points: PointMaker,
        journal: Journal,
        telemetry: TelemetryBuffer,
        clock: Clock,
        counters: Counters,
        *,
        right_of_way: RightOfWay | None = None,
    ) -> None:
        self._config = config
        # while an alarm is on its way to the broker, a batch without one waits
        self._right_of_way = right_of_way
        self._writer = writer
        self._points = points
        self._journal = journal
        self._telemetry = telemetry
        self._clock = clock
        self._counters = counters
        self._journal_wake = journal.listen()
        self._telemetry_wake = telemetry.register(CONSUMER)
        self._telemetry_full = telemetry.when_full(CONSUMER, config.batch_size)
        self._urgent_tokens = float(URGENT_BURST)  # alarm writes that may go at once
        self._tokens_at = 0.0  # event-loop time the tokens were counted
        self._backoff = Backoff(config.retry_min_s, config.retry_max_s)
        self._cursor = 0
        self.moved = asyncio.Event()  # set whenever the cursor advances
        self._flushing = Signal()
        self._written: deque[_Written] = deque()  # within the replay window, oldest first
        self._connections = 0  # the writer's connections when a write last succeeded

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def failing(self) -> bool:
        """The store refuses or cannot be reached: writes are being tried again."""
        return self._backoff.attempt > 0

    @property
    def replay_floor(self) -> int:
        """The oldest record a replay after a store restart may write again."""
        return self._written[0].after + 1 if self._written else self._cursor + 1

    def flush(self) -> None:
        """From now on send every batch without waiting for it to fill (for shutdown)."""
        self._flushing.set()

    async def run(self) -> None:
        self._cursor = await self._journal.cursor(CONSUMER)
        try:
            while True:
                if not await self._send_one_batch():
                    await first_of(self._journal_wake, self._telemetry_wake)
                    self._journal_wake.clear()
                    self._telemetry_wake.clear()
        finally:
            await self._writer.close()

    async def _read(self, size: int) -> Batch:
        """Journal records after the cursor; telemetry alone appends none, so then there is
        no need to ask the database."""
        if self._journal.last_seq <= self._cursor:
            return Batch([], self._cursor)
        return await self._journal.read_after(self._cursor, size)

    async def _send_one_batch(self) -> bool:
        size = self._config.batch_size
        batch = await self._read(size)
        if not self._urgent(batch) and len(batch.entries) < size \
                and self._telemetry.pending(CONSUMER) < size:
            pending = batch.upto > self._cursor or self._telemetry.pending(CONSUMER) > 0
            if not pending:
                return False
            # let a batch fill up for one interval; an alarm arriving meanwhile, or a full
            # batch of telemetry, cuts it short
            interval = asyncio.ensure_future(self._clock.sleep(self._config.flush_interval_s))
            try:
                while not interval.done() and not self._flushing.is_set():
                    self._journal_wake.clear()
                    self._telemetry_full.clear()
                    if self._telemetry.pending(CONSUMER) >= size:
                        break
                    await first_of(interval, self._flushing, self._journal_wake,
                                   self._telemetry_full)
                    batch = await self._read(size)
                    if self._urgent(batch) or len(batch.entries) >= size:
                        break
            finally:
                interval.cancel()
        elif self._urgent(batch) and not self._flushing.is_set():
            # alarms go at once, but a storm of alerts shares writes rather than paying one
            # each: a few at once, then one per URGENT_GAP_S (physical time)
            wait = self._urgent_wait()
            if wait > 0:
                await asyncio.sleep(wait)
                self._urgent_wait()
                batch = await self._read(size)
        urgent = self._urgent(batch)
        while not urgent and await self._gave_way():
            # this batch waited for an alarm on its way to the broker; the alarm (or
            # another) journalled meanwhile goes at once
            batch = await self._read(size)
            urgent = self._urgent(batch)
        readings, tele_upto = self._telemetry.peek(CONSUMER, max(size - len(batch.entries), 0))
        lines = await self._lines([*(e.record for e in batch.entries), *readings],
                                  step_aside=not urgent)
        if lines:
            await self._write_until_accepted(lines)
            await self._replay_if_reconnected()
        if batch.upto > self._cursor:
            if self._config.replay_window_s > 0 and batch.entries:
                now = self._clock.monotonic()
                self._written.append(_Written(now, self._cursor, batch.upto))
                while self._written[0].at < now - self._config.replay_window_s:
                    self._written.popleft()
            # a replayed point overwrites itself: no fsync of its own for the cursor
            await self._journal.move_cursor(CONSUMER, batch.upto, durable=False)
            self._cursor = batch.upto
            self.moved.set()
        self._telemetry.take(CONSUMER, tele_upto)
        return True

    async def _replay_if_reconnected(self) -> None:
        """After a write over a new connection, write again what the store accepted within
        the window before; the replay keeps the first write's time, so a record is
        replayed after each restart within the window, not for ever."""
        connections, self._connections = self._connections, self._writer.connections
        if not connections or self._writer.connections <= connections or not self._written:
            return
        after, upto = self._written[0].after, self._written[-1].upto
        log.info("new connection to the store (it may have restarted): writing journal "
                 "records %d to %d again", after + 1, upto)
        position = after
        while position < upto:
            batch = await self._journal.read_after(position, self._config.batch_size)
            if batch.upto <= position:
                break  # pruned meanwhile
            records = [e.record for e in batch.entries if e.seq <= upto]
            lines = await self._lines(records)
            if lines:
                await self._write_until_accepted(lines)
                self._counters.inc("store_replayed", len(lines))
            position = batch.upto
        self._connections = self._writer.connections

    def _urgent_wait(self) -> float:
        """Seconds until an alarm write may go (a token bucket); takes the token if 0."""
        now = asyncio.get_running_loop().time()
        self._urgent_tokens = min(URGENT_BURST, self._urgent_tokens
                                  + (now - self._tokens_at) / URGENT_GAP_S)
        self._tokens_at = now
        if self._urgent_tokens >= 1:
            self._urgent_tokens -= 1
            return 0.0
        return (1 - self._urgent_tokens) * URGENT_GAP_S

    async def _lines(self, records: list[Record], *, step_aside: bool = False) -> list[str]:
        """Line protocol for `records`, a slice per turn of the event loop: a large batch
        made in one go held up everything else (alarms too) for tens of milliseconds.
        `step_aside`: while an alarm is on its way to the broker, the next slice waits
        (until a record is journalled: an alarm's write goes once this batch is done)."""
        lines: list[str] = []
        for first in range(0, len(records), LINES_PER_TURN):
            if first:
                await asyncio.sleep(0)
                if step_aside:
                    await self._gave_way()
            lines += [line for record in records[first:first + LINES_PER_TURN]
                      if (line := self._points.line(record))]
        return lines

    async def _gave_way(self) -> bool:
        """While an alarm is on its way to the broker, wait until it is published or a
        record is journalled; whether there was one to wait for."""
        way = self._right_of_way
        if way is None or not way.held:
            return False
        self._journal_wake.clear()
        await first_of(way.cleared(), self._journal_wake)
        return True

    @staticmethod
    def _urgent(batch: Batch) -> bool:
        return any(delivery_class(e.record) is DeliveryClass.ALARM for e in batch.entries)

    async def _write_until_accepted(self, lines: list[str]) -> None:
        while True:
            try:
                await self._writer.write(lines)
            except StoreWriteError as exc:
                if not exc.retryable:
                    # the store parsed and refused these points: retrying cannot help
                    self._counters.inc("store_rejected", len(lines), status=str(exc.status))
                    log.error("store rejected %d point(s): %s", len(lines), exc)
                    return
                self._counters.inc("store_retries", reason=str(exc.status or "unreachable"))
                delay = self._backoff.next_delay()
                if self._backoff.attempt == 1 or self._backoff.attempt % 20 == 0:
                    log.warning("store write failed (%s); retry %d in %.1f s", exc,
                                self._backoff.attempt, delay)
                await self._clock.sleep(delay)
                continue
            if self._backoff.attempt:
                log.info("store write succeeded after %d retries", self._backoff.attempt)
            self._backoff.reset()
            self._counters.inc("store_points_written", len(lines))
            return
