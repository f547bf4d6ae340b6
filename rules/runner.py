"""Feeds records to the rules and journals what they produce.

Events and acks come from the journal (its own cursor), readings from the telemetry buffer,
and time from the injected clock: timers (`for`, absence, escalation steps) fire when
`next_deadline()` comes. Alert transitions, notification intents, the cursor and the rule
state rows that changed are committed in one transaction, so a restart resumes exactly
where it stopped.

The SD card is a budget: a turn that changed only what telemetry moves (rate samples, the
engine's clock), or that evaluated only journalled records (events, acks) and raised
nothing, costs no fsync. Its rows and the cursor wait in memory for the next durable
commit; the lazy rows (and the cursor, if still waiting) are written without an fsync once
they waited LAZY_SAVE_S. A power cut can then take them back: the records after the saved
cursor are still in the journal and are evaluated again from the state saved with it, to
the same state (a door's open timer is armed again from the event's own time), and a rate
starts from an older sample. Whatever a reading or a timer changed durably, and every
alert and notification, is committed with its fsync before anything is published.

An alarm's message does not wait for a commit of its own: the intake hands it here
(`alarm`), and the rules evaluate it at the front of the journal's line, after every
record journalled before it and the readings taken before it, and commit it together with
the alerts and state it made, in one transaction with one fsync. Nothing is journalled
between the records read and that commit (the journal holds its next commit meanwhile),
so the cursor moves past the alarm in the same commit. Commits queued but not yet under
way (another source's events, not yet acknowledged to it) come after the alarm. While
the task is not running, `alarm` refuses (AlarmLaneClosedError) and the intake journals
the message itself.

A commit that fails (a full disk, an I/O error) fails the task, and the task goes back to
what the journal holds before it evaluates again: the state rows as saved, the records
after the saved cursor and the readings not yet taken. The transitions of the failed
commit then come again, with the same ids, and are committed once the journal takes them;
nothing it held is published meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.journaling import Batch, LineFront, Receipt, RecordLog
from gateway.core.model import AckCommand, Alert, DeliveryClass, DeviceEvent, Reading, Record
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.core.waiting import first_of
from rules.seam import TimedRuleSet
from rules.state_rows import LEGACY, PREFIX, Changes

log = logging.getLogger(__name__)

CONSUMER = "rules"
READINGS_BATCH_S = 0.005  # physical time, like a bus's silence: not the scheduling clock
LAZY_SAVE_S = 900.0  # the longest lazy state and a cursor wait to be written: a rate over
# a minute gains nothing from samples saved more often (older than a reboot takes anyway)


class AlarmLaneClosedError(Exception):
    """The rules take no alarm now (their task is not running): journal it as any event."""


@dataclass
class _Alarm:
    events: Sequence[DeviceEvent]
    receipt: Receipt | None
    done: asyncio.Future[list[int]]


@dataclass
class RuleStats:
    evaluations: int = 0
    seconds: float = 0.0


class RuleRunner:
    """The one task that owns the rule state."""

    def __init__(
        self,
        journal: RecordLog,
        rules: TimedRuleSet,
        telemetry: TelemetryBuffer,
        clock: Clock,
        on_transition: Callable[[Alert], None],
        counters: Counters,
        batch: int = 256,
        readings_batch: int = 1024,
        *,
        right_of_way: RightOfWay | None = None,
    ) -> None:
        self._journal = journal
        # while an alarm is on its way, turns over readings wait (the alarm lane does not)
        self._right_of_way = right_of_way
        self._aside: asyncio.Future[None] | None = None  # a turn stepped aside until this
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
        self._saved_cursor = 0  # as committed
        # state rows waiting for a commit: rides along with the next durable one
        self._lazy: dict[str, bytes | None] = {}
        self._lazy_since: float | None = None  # clock.monotonic() of the oldest waiting change
        # rows that journalled records changed, waiting with the cursor past those records:
        # they go with whatever commit moves the cursor next
        self._replayable: dict[str, bytes | None] = {}
        self.stats = RuleStats()
        self._stale = False  # a commit failed: the state in memory is ahead of the journal
        self._alarms: deque[_Alarm] = deque()  # handed in by the intake, not yet evaluated
        self._running = False
        self._ahead: set[int] = set()  # records evaluated before the cursor reached them

    async def restore(self) -> None:
        self._cursor = self._saved_cursor = await self._journal.cursor(CONSUMER)
        rows = await self._journal.read_states(PREFIX)
        if rows:
            self.rules.restore_rows(rows)
            if LEGACY in rows:
                self._lazy[LEGACY] = None  # saved as rows from now on
            log.info("restored %d active alert(s)", len(self.rules.active()))

    def state_rows(self) -> dict[str, bytes | None]:
        """Every state row waiting to be saved and the ones changed now, to commit durably."""
        rows, self._lazy, self._lazy_since = self._lazy, {}, None
        rows.update(self._take_replayable())
        changes = self.rules.state_changes()
        rows.update(changes.lazy)
        rows.update(changes.durable)
        return rows

    async def save(self) -> None:
        """Commit what waits (at shutdown: nothing needs to be evaluated again at the start)."""
        if self._stale:
            return  # memory is ahead of a failed commit: the journal's state stands
        rows = self.state_rows()
        moved = self._cursor > self._saved_cursor
        if rows or moved:
            await self._journal.commit(cursor=(CONSUMER, self._cursor) if moved else None,
                                       state=rows)
            self._saved_cursor = self._cursor

    async def alarm(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None,
                    *, whole: bool = False) -> list[int]:
        """Journal one message's events (an alarm among them) in one commit with the alerts
        the rules make of them; returns their sequence numbers (`whole`: those of every
        record of the commit, the alerts' too).

        Raises AlarmLaneClosedError, before anything was journalled, when the task is not
        running; and what the journal raises when the commit failed.
        """
        if not self._running:  # a failed commit ends the task: not running either
            raise AlarmLaneClosedError("rules not running")
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._alarms.append(_Alarm(events, receipt, done))
        self._wake.set()
        if self._aside is not None and not self._aside.done():
            self._aside.set_result(None)
        seqs = await done
        return seqs if whole else seqs[: len(events)]

    async def run(self) -> None:
        if self._stale:
            await self._rewind()
        self._running = True
        try:
            while True:
                if self._alarms and await self._alarm_turn(self._alarms[0]):
                    continue
                await self._turn()
        finally:
            self._running = False
            while self._alarms:  # the intake journals them itself
                alarm = self._alarms.popleft()
                if not alarm.done.done():
                    alarm.done.set_exception(AlarmLaneClosedError("rules stopped"))

    async def _read(self) -> Batch:
        if self._journal.last_seq <= self._cursor:
            return Batch([], self._cursor)  # telemetry alone appends nothing: no database
        return await self._journal.read_after(self._cursor, self._batch)

    async def _turn(self) -> None:
        if self._right_of_way is not None and self._right_of_way.held and not self._alarms:
            # an alarm is on its way: the readings wait until it is published (or another
            # alarm comes, which the next turn takes)
            self._aside = self._right_of_way.cleared()
            try:
                await self._aside
            finally:
                self._aside = None
            return
        batch = await self._read()
        alarms = [e.record.ts for e in batch.entries if _alarm(e.record)]
        readings, readings_upto = self._readings_before(max(alarms) if alarms else None)
        caught_up = batch.upto <= self._cursor
        deadline = self.rules.next_deadline()
        due = caught_up and deadline is not None and deadline <= self._clock.now_ms()
        if caught_up and not readings and not due:
            if self._alarms:
                return  # an alarm came while the journal was read
            self._idle.set()
            await self._wait(deadline)
            return
        self._idle.clear()
        started = time.perf_counter()
        transitions: list[Alert] = []
        # the two streams in time order: a reading that waited for the turn must not
        # count at the time of an event journalled meanwhile (a `for` timer would
        # then start, and fire, that much later)
        # what the journalled records changed can be evaluated again from the journal;
        # what readings changed cannot (they are not journalled): the state is taken
        # apart each time the stream evaluated switches between the two
        changes = Changes()
        from_readings, journalled = self._evaluate_in_order(batch, readings, changes,
                                                            transitions)
        if due:
            # timers run only once the journal is caught up: no record is overtaken
            transitions += self.rules.on_time(self._clock.now_ms())
            journalled = False  # a timer's change is no record's to replay
        notifications = self.rules.take_notifications()  # changes the state it owes
        from_readings |= self._take_changes(changes, journalled is not False)
        self.stats.seconds += time.perf_counter() - started
        self.stats.evaluations += len(batch.entries) + len(readings)
        self._passed(batch.upto)
        replayable = not (from_readings or due or transitions or notifications)
        if changes.durable and replayable:
            # evaluated again from the journal after a power cut: no fsync of its own
            for row in changes.durable:
                self._lazy.pop(row, None)
            self._replayable.update(changes.durable)
        elif transitions or notifications or changes.durable:
            # the lazy rows stay behind: riding along would write them with every alarm
            rows = {**self._take_replayable(), **changes.durable}
            for row in rows:
                self._lazy.pop(row, None)
            await self._commit(
                [*transitions, *notifications],
                cursor=(CONSUMER, self._cursor) if self._cursor > self._saved_cursor
                else None,
                state=rows,
            )
            self._saved_cursor = self._cursor
        await self._defer(changes.lazy)
        if readings_upto is not None:
            self._telemetry.take(CONSUMER, readings_upto)
        self._publish(transitions)

    async def _alarm_turn(self, alarm: _Alarm) -> bool:
        """Evaluate the alarm's events after what came before them and commit them with
        what they made, at the front of the journal's line; False when the journal holds
        more records before it than a turn takes (a normal turn first)."""
        try:
            self._journal.check_room(alarm.events)
        except Exception as exc:  # refused as its own commit would be: nothing changed
            self._alarms.popleft()
            if not alarm.done.done():
                alarm.done.set_exception(exc)
            return True
        async with self._journal.front_of_line() as front:
            batch = await self._read()
            if len(batch.entries) >= self._batch and batch.upto < self._journal.last_seq:
                return False  # behind: the records before the alarm are evaluated first
            self._alarms.popleft()
            try:
                committed, transitions, lazy, readings_upto = self._evaluate_alarm(
                    alarm, batch, front)
            except BaseException:
                # evaluated (some of it), not journalled: back to the journal's state, and
                # the intake journals the alarm itself
                self._stale = True
                if not alarm.done.done():
                    alarm.done.set_exception(AlarmLaneClosedError("rules failed"))
                raise
        try:
            seqs = await committed
        except Exception:
            self._stale = True
            raise
        if seqs and seqs[0] == self._cursor + 1:
            self._cursor = seqs[-1]  # the journal moved it past them in the same commit
        else:  # never expected: records came between the ones read and the alarm's
            log.error("rules: records were journalled between the ones read and an alarm "
                      "(%s); the alarm is not evaluated again", seqs)
            self._ahead.update(seqs)
        self._saved_cursor = self._cursor
        await self._defer(lazy)
        if readings_upto is not None:
            self._telemetry.take(CONSUMER, readings_upto)
        self._publish(transitions)
        return True

    def _evaluate_alarm(self, alarm: _Alarm, batch: Batch, front: LineFront
                        ) -> tuple[asyncio.Future[list[int]], list[Alert],
                                   dict[str, bytes | None], int | None]:
        """Evaluate `batch`, the readings before the alarm and the alarm, and start their
        commit; returns it, the transitions, the lazy rows and how far to take readings."""
        self._idle.clear()
        started = time.perf_counter()
        newest = max(e.ts for e in alarm.events)
        readings, readings_upto = self._readings_before(newest)
        transitions: list[Alert] = []
        changes = Changes()
        self._evaluate_in_order(batch, readings, changes, transitions)
        for event in alarm.events:
            transitions += self._evaluate(0, event)
        notifications = self.rules.take_notifications()
        self._take_changes(changes, True)
        self.stats.seconds += time.perf_counter() - started
        self.stats.evaluations += len(batch.entries) + len(readings) + len(alarm.events)
        self._passed(batch.upto)
        rows = {**self._take_replayable(), **changes.durable}
        for row in rows:
            self._lazy.pop(row, None)
        committed = front.commit(
            [*alarm.events, *transitions, *notifications], message=len(alarm.events),
            cursor=(CONSUMER, self._cursor), state=rows, receipt=alarm.receipt,
            also=[alarm.done])
        return committed, transitions, changes.lazy, readings_upto

    def _readings_before(self, alarm_ts: int | None) -> tuple[list[Reading], int | None]:
        """The readings to take this turn, and how far to take them once evaluated (None:
        none). A turn with an alarm takes only the readings from before it: its alert is
        committed (and published) before the readings after it are evaluated, in the next
        turn; all in time order (a reading taken later counts at the engine's time, and a
        `for` it starts would start that much later)."""
        readings, upto = self._telemetry.peek(CONSUMER, self._readings_batch)
        if alarm_ts is None or not readings or readings[-1].ts <= alarm_ts:
            return readings, upto
        kept = bisect.bisect_right([r.ts for r in readings], alarm_ts)
        return readings[:kept], upto - (len(readings) - kept) if kept else None

    def _evaluate_in_order(self, batch: Batch, readings: list[Reading], changes: Changes,
                           transitions: list[Alert]) -> tuple[bool, bool | None]:
        """The journalled records and the readings, in time order, into `transitions`; the
        state they changed into `changes`, taken apart each time the stream switches.
        Returns whether readings changed durable rows, and which stream came last (None:
        neither)."""
        from_readings = False
        journalled: bool | None = None
        ahead = self._ahead  # evaluated with their alarm's commit already
        # the records the rules read: alerts and notifications (most of what a loaded
        # gateway journals) change nothing and leave the readings' way as if they were not
        records = [(e.seq, e.record) for e in batch.entries
                   if isinstance(e.record, EVALUATED) and not (ahead and e.seq in ahead)]
        if not records:  # readings alone, as most turns under load
            on_reading = self.rules.on_reading
            for reading in readings:
                try:
                    found = on_reading(reading)
                except Exception:  # as `_evaluate` has it
                    self._counters.inc("rule_errors")
                    log.exception("rules failed on Reading %s; skipped", reading.id)
                    continue
                if found:
                    transitions += found
            return from_readings, False if readings else None
        for seq, record in heapq.merge(records, ((0, r) for r in readings), key=_ts):
            if journalled is not None and journalled is not bool(seq):
                from_readings |= self._take_changes(changes, journalled)
            journalled = bool(seq)
            transitions += self._evaluate(seq, record)
        return from_readings, journalled

    def _passed(self, upto: int) -> None:
        self._cursor = max(self._cursor, upto)
        if self._ahead:
            self._ahead = {seq for seq in self._ahead if seq > self._cursor}

    def _publish(self, transitions: list[Alert]) -> None:
        for alert in transitions:
            log.info("alert %s %s on %s: %s", alert.rule, alert.state, alert.device,
                     alert.message)
            self._on_transition(alert)

    async def _commit(self, records: list[Record] | None = None, *,
                      cursor: tuple[str, int] | None, state: dict[str, bytes | None],
                      durable: bool | None = None) -> None:
        try:
            await self._journal.commit(records or (), cursor=cursor, state=state,
                                       durable=durable)
        except Exception:
            # what this turn changed is in memory only: gone back to at the next start
            self._stale = True
            raise

    async def _rewind(self) -> None:
        """Back to the state, cursor and readings the journal holds, after a failed commit."""
        rows = await self._journal.read_states(PREFIX)
        self._cursor = self._saved_cursor
        self._lazy, self._lazy_since, self._replayable = {}, None, {}
        self.rules.restore_rows(rows)  # with the notifications it still owed then
        if LEGACY in rows:
            self._lazy[LEGACY] = None  # saved as rows from now on, as at the start
        self._stale = False
        log.warning("rules: evaluating again from the journal's state after a failed "
                    "commit (%d active alert(s) there)", len(self.rules.active()))

    def _take_changes(self, into: Changes, journalled: bool) -> bool:
        """Add the state changed since the last take to `into`; whether durable rows
        changed that the journal cannot replay (`journalled` False: readings, timers)."""
        taken = self.rules.state_changes()
        into.durable.update(taken.durable)
        into.lazy.update(taken.lazy)
        return bool(taken.durable) and not journalled

    async def _defer(self, rows: dict[str, bytes | None]) -> None:
        """Keep lazy rows (and the cursor) for a later commit; write them when they waited
        LAZY_SAVE_S, without an fsync."""
        self._lazy.update(rows)
        if not self._lazy and self._cursor <= self._saved_cursor:
            return
        now = self._clock.monotonic()
        if self._lazy_since is None:
            self._lazy_since = now
        if now - self._lazy_since < LAZY_SAVE_S:
            return
        rows, self._lazy, self._lazy_since = self._lazy, {}, None
        rows.update(self._take_replayable())
        cursor = self._cursor
        await self._commit(cursor=(CONSUMER, cursor) if cursor > self._saved_cursor else None,
                           state=rows, durable=False)
        self._saved_cursor = cursor

    def _take_replayable(self) -> dict[str, bytes | None]:
        rows, self._replayable = self._replayable, {}
        return rows

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
            loop = asyncio.get_running_loop()
            pause: asyncio.Future[None] = loop.create_future()
            pausing = loop.call_later(READINGS_BATCH_S, _settle, pause)
            try:
                await first_of(self._wake, pause)
            finally:
                pausing.cancel()

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


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _alarm(record: Record) -> bool:
    return isinstance(record, DeviceEvent) and record.cls is DeliveryClass.ALARM


EVALUATED = (DeviceEvent, AckCommand, Reading)  # the records `_evaluate` gives the rules


def _ts(item: tuple[int, Record]) -> int:
    return item[1].ts
