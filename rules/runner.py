"""Feeds records to the rules and journals what they produce.

Events and acks come from the journal (its own cursor), readings from the telemetry buffer,
and time from the injected clock: timers (`for`, absence, escalation steps) fire when
`next_deadline()` comes. Alert transitions, notification intents, the cursor and the rule
state are committed in one transaction, so a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.counters import Counters
from gateway.journal import Batch, Journal
from gateway.model import AckCommand, Alert, DeviceEvent, Reading, Record
from gateway.telemetry import TelemetryBuffer
from gateway.waiting import first_of
from rules.seam import TimedRuleSet

log = logging.getLogger(__name__)

CONSUMER = "rules"
READINGS_BATCH_S = 0.005  # physical time, like a bus's silence: not the scheduling clock
STATE_KEY = "rules.state"


@dataclass
class RuleStats:
    evaluations: int = 0
    seconds: float = 0.0


class RuleRunner:
    """The one task that owns the rule state."""

    def __init__(
        self,
        journal: Journal,
        rules: TimedRuleSet,
        telemetry: TelemetryBuffer,
        clock: Clock,
        on_transition: Callable[[Alert], None],
        counters: Counters,
        batch: int = 256,
        readings_batch: int = 1024,
    ) -> None:
        self._journal = journal
        self.rules = rules
        self._telemetry = telemetry
        self._clock = clock
        self._on_transition = on_transition
        self._counters = counters
        self._batch = batch
        # readings cost no commit of their own: a turn takes many, so that a stream of
        # them shares the commits of the alerts it raises
        self._readings_batch = readings_batch
        self._wake = journal.listen()
        self._readings = telemetry.register(CONSUMER)
        self._idle = asyncio.Event()
        self._cursor = 0
        self._saved = b""  # the rule state as last committed, apart from its clock
        self.stats = RuleStats()

    async def restore(self) -> None:
        self._cursor = await self._journal.cursor(CONSUMER)
        data = await self._journal.read_state(STATE_KEY)
        if data is not None:
            self.rules.restore(data)
            self._saved = self.rules.snapshot_apart_from_time()
            log.info("restored %d active alert(s)", len(self.rules.active()))

    async def run(self) -> None:
        while True:
            # telemetry alone appends nothing: no need to ask the database
            batch = (await self._journal.read_after(self._cursor, self._batch)
                     if self._journal.last_seq > self._cursor else Batch([], self._cursor))
            readings, readings_upto = self._telemetry.peek(CONSUMER, self._readings_batch)
            caught_up = batch.upto <= self._cursor
            deadline = self.rules.next_deadline()
            due = caught_up and deadline is not None and deadline <= self._clock.now_ms()
            if caught_up and not readings and not due:
                self._idle.set()
                await self._wait(deadline)
                continue
            self._idle.clear()
            started = time.perf_counter()
            transitions: list[Alert] = []
            # the two streams in time order: a reading that waited for the turn must not
            # count at the time of an event journalled meanwhile (a `for` timer would
            # then start, and fire, that much later)
            for seq, record in heapq.merge(((e.seq, e.record) for e in batch.entries),
                                           ((0, r) for r in readings), key=_ts):
                transitions += self._evaluate(seq, record)
            if due:
                # timers run only once the journal is caught up: no record is overtaken
                transitions += self.rules.on_time(self._clock.now_ms())
            self.stats.seconds += time.perf_counter() - started
            self.stats.evaluations += len(batch.entries) + len(readings)
            notifications = self.rules.take_notifications()
            state = self.rules.snapshot_apart_from_time()
            moved = batch.upto > self._cursor
            # telemetry that changed nothing costs no fsync, even though the engine's clock
            # moved on (it is saved with the next change); a started timer does
            if transitions or notifications or moved or state != self._saved:
                await self._journal.commit(
                    [*transitions, *notifications],
                    cursor=(CONSUMER, batch.upto) if moved else None,
                    state={STATE_KEY: self.rules.snapshot()},
                )
                self._saved = state
            self._cursor = max(self._cursor, batch.upto)
            self._telemetry.take(CONSUMER, readings_upto)
            for alert in transitions:
                log.info("alert %s %s on %s: %s", alert.rule, alert.state, alert.device,
                         alert.message)
                self._on_transition(alert)

    async def _wait(self, deadline: int | None) -> None:
        timer = None
        waits: list[asyncio.Event | asyncio.Future[None]] = [self._wake, self._readings]
        if deadline is not None:
            delay = max(deadline - self._clock.now_ms(), 0) / 1000
            timer = asyncio.ensure_future(self._clock.sleep(delay))
            waits.append(timer)
        try:
            await first_of(*waits)
        finally:
            if timer is not None:
                timer.cancel()
        readings_only = (self._readings.is_set() and not self._wake.is_set()
                         and (timer is None or not timer.done()))
        self._wake.clear()
        self._readings.clear()
        if readings_only:
            # readings arrive a network packet at a time under a steady load: a turn per
            # READINGS_BATCH_S takes them in batches instead of one turn (and one commit,
            # when they change an alert) each; a journalled record (an alarm) ends the wait
            pause = asyncio.ensure_future(asyncio.sleep(READINGS_BATCH_S))
            try:
                await first_of(self._wake, pause)
            finally:
                pause.cancel()

    def _evaluate(self, seq: int, record: Record) -> list[Alert]:
        try:
            if isinstance(record, DeviceEvent):
                return self.rules.on_event(record)
            if isinstance(record, AckCommand):
                return self.rules.on_ack(record)
            if isinstance(record, Reading):
                return self.rules.on_reading(record)
        except Exception:  # one record a rule cannot handle must not stop all rules
            self._counters.inc("rule_errors")
            log.exception("rules failed on %s %s; skipped",
                          type(record).__name__, seq or record.id)
        return []

    @property
    def idle(self) -> bool:
        """Caught up with the journal and waiting for a record or a timer."""
        return self._idle.is_set()

    async def caught_up(self) -> None:
        """Wait until every journalled record has been evaluated."""
        while not (self._idle.is_set() and self._cursor >= self._journal.last_seq):
            self._idle.clear()
            await self._idle.wait()


def _ts(item: tuple[int, Record]) -> int:
    return item[1].ts
