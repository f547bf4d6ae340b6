"""One upstream's consumer of the journal: policy, transport, cursor and audit.

At least once, in journal order: a batch of records is shaped by the upstream's policy and
handed to its transport; the cursor moves only once the transport returned (the far side
confirmed every parcel), in one commit with the audit rows of what went and the counts of
the open aggregate periods. A delivery that fails is retried with capped backoff, the same
parcels with the same ids, for as long as it takes. Each upstream is a task of its own: one
that is down holds nobody else back.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.upstream_config import AnyUpstream
from gateway.core.waiting import first_of
from gateway.journal import Journal, SharedRow
from gateway.upstreams.shaping import Counted, Shaped, Shaper
from gateway.upstreams.tally import Key, Tally
from gateway.upstreams.transport import Parcel, Transport, TransportDown

log = logging.getLogger(__name__)

CONSUMER_PREFIX = "upstream:"
STATE_PREFIX = "upstream."


class UpstreamState(enum.StrEnum):
    IDLE = "idle"  # nothing delivered since the start: nothing to deliver yet
    UP = "up"  # the last delivery was confirmed
    DOWN = "down"  # deliveries fail; retrying


def consumer_name(upstream: str) -> str:
    return f"{CONSUMER_PREFIX}{upstream}"


class UpstreamSink:
    """Delivers what one upstream's policy allows, in journal order."""

    def __init__(self, config: AnyUpstream, shaper: Shaper, transport: Transport,
                 journal: Journal, clock: Clock, counters: Counters) -> None:
        self.config = config
        self.name = config.name
        self.consumer = consumer_name(config.name)
        self._shaper = shaper
        self._transport = transport
        self._journal = journal
        self._clock = clock
        self._counters = counters
        self._backoff = Backoff(config.retry_min_s, config.retry_max_s)
        self._journal_wake = journal.listen()
        self._cursor = 0
        self._tally = Tally()
        self._state_key = f"{STATE_PREFIX}{config.name}.tally"
        self._opened = False
        rules = shaper.policy.rules
        self._period = {r.id: r.aggregate.period_ms for r in rules if r.aggregate}
        self._delay = {r.id: r.delay_ms for r in rules if r.aggregate}
        self._held_until: int | None = None  # a delayed record at the head: until (epoch ms)
        self._due: dict[int, int] = {}  # the delayed record at the head: seq -> when due
        self.state = UpstreamState.IDLE
        self.down_reason = ""
        self.moved = asyncio.Event()  # set whenever the cursor advances
        self.delivered = 0  # parcels confirmed since the start

    @property
    def cursor(self) -> int:
        return self._cursor

    async def run(self) -> None:
        self._cursor = await self._journal.cursor(self.consumer)
        self._tally = Tally.decode(await self._journal.read_state(self._state_key))
        self._tally.forget(set(self._period))
        try:
            while True:
                if not await self._one_batch():
                    await self._wait()
                # a backlog read from the journal's memory and shaped without a pause would
                # hold the loop batch after batch: one batch per turn
                await asyncio.sleep(0)
        finally:
            self._opened = False
            await self._transport.close()

    async def _wait(self) -> None:
        """Until new records, or the next aggregate period or delayed record is due."""
        self._journal_wake.clear()
        if self._journal.last_seq > self._cursor and self._held_until is None:
            return
        due = [t for t in (self._held_until,
                           self._tally.next_due(self._period, self._delay)) if t is not None]
        if not due:
            await self._journal_wake.wait()
            return
        timer = asyncio.ensure_future(self._clock.sleep(
            max((min(due) - self._clock.now_ms()) / 1000, 0.0)))
        try:
            await first_of(timer, self._journal_wake)
        finally:
            timer.cancel()

    async def _one_batch(self) -> bool:
        """Shape and deliver the next batch; False when there was nothing to do."""
        now = self._clock.now_ms()
        self._held_until = None
        shaped: list[Shaped] = []
        counted = False
        upto = self._cursor
        if self._journal.last_seq > self._cursor:
            batch = await self._journal.read_after(self._cursor, self.config.batch)
            upto = batch.upto
            for entry in batch.entries:
                result = self._shaper.shape(entry.seq, entry.record)
                if isinstance(result, Shaped) and result.rule.delay_ms:
                    # a record's time from a clock ahead of ours counts as now: the delay
                    # runs from when it was first looked at, at the latest
                    due = self._due.get(entry.seq)
                    if due is None:
                        due = min(result.due_ms, now + result.rule.delay_ms)
                        self._due = {entry.seq: due}
                    if due > now:
                        self._held_until = due  # a delay holds what comes after too
                        upto = entry.seq - 1
                        break
                if isinstance(result, Shaped):
                    shaped.append(result)
                elif isinstance(result, Counted):
                    self._tally.add(result.rule.id, result.period_start, result.group,
                                    result.seq)
                    counted = True
        sums: list[Key] = []
        for key, count, seq in self._tally.due(now, self._period, self._delay):
            rule = next(r for r in self._shaper.policy.rules if r.id == key[0])
            shaped.append(self._shaper.aggregate_parcel(rule, key[1], key[2], count, seq))
            sums.append(key)
        if upto <= self._cursor and not shaped and not counted:
            return False
        if shaped:
            await self._deliver([s.parcel for s in shaped])
        self._tally.sent(sums, self._period)
        at = self._clock.now_ms()
        rows = [SharedRow(self.name, s.parcel.record_id, s.parcel.seq, s.rule.id, s.subject,
                          s.parcel.kind, s.parcel.type, ",".join(s.fields),
                          ",".join(s.personal), s.rule.basis_text, at) for s in shaped]
        state: dict[str, bytes | None] = {}
        if counted or sums:
            state[self._state_key] = self._tally.encode()
        if not rows and not state:
            # records this upstream does not take: the move rides along with a later commit
            # (a power cut only makes it look at them again)
            await self._journal.move_cursor(self.consumer, upto, durable=False)
            self._cursor = upto
            self.moved.set()
            return True
        # one commit for the cursor, the audit and the counts: after a crash all three
        # agree; no fsync of its own (a power cut delivers a batch again, with its ids)
        await self._journal.commit(cursor=(self.consumer, max(upto, self._cursor)),
                                   state=state, shared=rows, durable=False)
        if upto > self._cursor:
            self._cursor = upto
            self.moved.set()
        if shaped:
            self._counters.inc("upstream_delivered", len(shaped), upstream=self.name)
            self.delivered += len(shaped)
        return True

    async def _deliver(self, parcels: Sequence[Parcel]) -> None:
        """Until the far side confirmed every parcel."""
        while True:
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    if not self._opened:
                        self._opened = True  # closed again below if it fails
                        await self._transport.open()
                    await self._transport.deliver(parcels)
            except (TransportDown, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, TransportDown) else "timeout"
                self._counters.inc("upstream_retries", upstream=self.name, reason=reason)
                if self.state is not UpstreamState.DOWN:
                    log.warning("upstream %s: delivery failed (%s); retrying with backoff, "
                                "its records wait in the journal", self.name, exc)
                self.state = UpstreamState.DOWN
                self.down_reason = str(exc) or reason
                if self._opened:
                    self._opened = False
                    await self._transport.close()
                await self._clock.sleep(self._backoff.next_delay())
                continue
            if self.state is UpstreamState.DOWN:
                log.info("upstream %s: delivering again after %d retries", self.name,
                         self._backoff.attempt)
            self._backoff.reset()
            self.state = UpstreamState.UP
            self.down_reason = ""
            return
