"""Publishes journalled events and alerts, telemetry and device status on MQTT.

This task is the only publisher, so retained topics are written in one order. After every
new connection it re-asserts the retained state (gateway online, device status, active
alerts), because the broker may have restarted without persistence, and publishes again
what the lost broker had confirmed shortly before (the replay). Records new to the broker
go first on every turn: an alarm never waits behind the replay or the re-assertion.

A retained alert or device status the broker refuses in its PUBACK (an ACL that does not
let the gateway write the topic, a quota) goes again, in its newest state, after 1 s and
then doubling up to 60 s, until the broker takes it. A refused event is counted
(`mqtt_publish_refused{reason}`) and not sent again: it is in the journal and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import Alert, DeviceEvent, Reading, encode
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.core.topics import Topics
from gateway.core.waiting import first_of
from gateway.journal import Entry, Journal
from gateway.mqtt_link import LinkDownError, MqttLink, Session
from gateway.status import Status, StatusBoard

log = logging.getLogger(__name__)

CONSUMER = "mqtt"
TELEMETRY_BATCH_S = 0.005  # physical time: how long telemetry may wait to share a turn
# retained statuses and alerts published per turn, between batches of new records: an
# alarm waits for one chunk, and a whole site's statuses never all wait for PUBACKs at once
RETAINED_CHUNK = 50
TOPICS_KEPT = 100_000  # outgoing topics kept per device (and per rule and key), made once
# journal batches published and not yet acknowledged, at most: a new alarm goes out while
# the broker's acknowledgements of the batches before it are still on their way
BATCHES_IN_FLIGHT = 4
REFUSED_RETRY_MIN_S = 1.0  # a retained message the broker refused goes again after this,
REFUSED_RETRY_MAX_S = 60.0  # then doubling up to this


@dataclass(frozen=True, slots=True)
class _Confirmed:
    """A batch of new records the broker confirmed: what a replay after a loss sends again."""

    at: float  # monotonic time of the confirmation (a replay does not renew it)
    first: int  # the batch's first sequence number
    devices: dict[str, int]  # device -> its last record in the batch


@dataclass(frozen=True, slots=True)
class _Sent:
    """A batch of new records published and waiting for the broker's acknowledgements."""

    first: int
    upto: int  # the cursor once it is confirmed
    devices: dict[str, int]
    count: int  # messages
    confirmed: asyncio.Future[list[None]]


class MqttSink:
    """At-least-once publishing: the journal cursor moves only after the broker's PUBACK."""

    def __init__(
        self,
        link: MqttLink,
        journal: Journal,
        telemetry: TelemetryBuffer,
        board: StatusBoard,
        topics: Topics,
        counters: Counters,
        clock: Clock,
        replay_window_s: float,
        batch: int = 500,  # within the link's QoS 1 messages in flight (1000)
        telemetry_batch: int = 2000,
        *,
        right_of_way: RightOfWay | None = None,
    ) -> None:
        self._clock = clock
        # told when an alarm's records are published; telemetry waits while one is on its way
        self._right_of_way = right_of_way
        self._window_s = replay_window_s
        self._link = link
        self._journal = journal
        self._telemetry = telemetry
        self._board = board
        self._topics = topics
        self._counters = counters
        self._batch = batch
        # telemetry needs no acknowledgement: a turn of the loop can carry many more of it
        # than of journal records, which wait for their PUBACKs and a cursor commit
        self._telemetry_batch = telemetry_batch
        self._journal_wake = journal.listen()
        self._telemetry_wake = telemetry.register(CONSUMER)
        # retained alert topic -> (the record that set it, 0 when restored; its payload)
        self._alerts: dict[str, tuple[int, bytes]] = {}
        self._unasserted: deque[str] = deque()  # alert topics still to re-assert
        self._published_status: dict[str, Status] = {}
        self._cursor = 0  # durable: everything up to here was confirmed by the broker
        self._sent = 0  # published on this connection up to here (confirmed or not)
        self._in_flight: deque[_Sent] = deque()  # published, in order, not yet confirmed
        self._confirmed: deque[_Confirmed] = deque()  # new batches, within the window
        # the replay: records in (_replay_pos, _replay_end] go again, in order, except
        # those sent ahead for a device with new records (_replayed_early)
        self._replay_pos = 0
        self._replay_end = 0
        self._replay_start = 1  # this connection published every record from here on
        self._replay_due: dict[str, int] = {}  # device -> its last record still to replay
        self._replayed_early: dict[int, str] = {}  # sequence number -> its device
        self.moved = asyncio.Event()  # set whenever the cursor or the replay advances
        self._telemetry_topics: dict[str, str] = {}  # device -> its telemetry topic
        self._alert_topics: dict[tuple[str, str], str] = {}  # (rule, key) -> alert topic
        self._status_topics: dict[str, str] = {}  # status topic published -> its device
        # retained topics the broker refused: when each goes again, and its last delay
        self._retry_at: dict[str, float] = {}
        self._retry_delay: dict[str, float] = {}
        self._retry_due = asyncio.Event()
        self._retry_timer: asyncio.Task[None] | None = None
        link.refusals.append(self._refused)

    def seed(self, alerts: list[Alert]) -> None:
        """Active alerts restored at start, re-asserted on every connection."""
        for alert in alerts:
            self._alerts[self._topics.alert(alert.rule, alert.device)] = (0, encode(alert))

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._retry_timer is not None:
                self._retry_timer.cancel()

    async def _run(self) -> None:
        self._arm_retry()  # refusals from before a restart of this task
        self._cursor = self._sent = await self._journal.cursor(CONSUMER)
        current = 0
        while True:
            session = await self._link.session()
            try:
                if session.number != current:
                    self._unsend()
                    self._rewind(self._link.previous_loss)
                    await self._link.publish_on(session, self._topics.gateway_status,
                                                Status.ONLINE.encode(), retain=True)
                    self._published_status.clear()
                    self._board.changed.set()  # every status again, on the new connection
                    self._unasserted = deque(self._alerts)
                    current = session.number
                # one step of each per turn, new records first: an alarm journalled during
                # a replay or a re-assertion goes out after the step under way, not after
                # all of it
                busy = await self._publish_journal(session)
                busy = await self._settle() or busy
                busy = await self._publish_status(session) or busy
                busy = await self._publish_refused(session) or busy
                busy = await self._reassert(session) or busy
                busy = await self._replay(session) or busy
                busy = await self._publish_telemetry(session) or busy
            except LinkDownError:
                self._unsend()  # published again, from the cursor on
                continue
            if not busy:
                oldest = self._in_flight[0].confirmed if self._in_flight else session.lost
                await first_of(self._journal_wake, self._telemetry_wake, self._board.changed,
                               session.lost, oldest)
                telemetry_only = not (self._journal_wake.is_set() or self._board.changed.is_set()
                                      or session.lost.done() or oldest.done())
                self._telemetry_wake.clear()
                if telemetry_only:
                    # readings arrive a network packet at a time under a steady load: a turn
                    # per TELEMETRY_BATCH_S publishes them in batches instead of one turn
                    # each; journalled records (alerts) are never held back: they end the
                    # wait
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(TELEMETRY_BATCH_S):
                            await first_of(self._journal_wake, self._board.changed,
                                           session.lost, oldest)
                self._journal_wake.clear()
                # board.changed is cleared where the statuses are read, not here: a change
                # during the wait must still be published

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def published(self) -> int:
        """The last record published on this connection, acknowledged or not: a new alarm
        waits only behind the records after it."""
        return self._sent

    @property
    def replaying(self) -> bool:
        """A replay after a broker loss is still under way."""
        return self._replay_pos < self._replay_end

    @property
    def replay_floor(self) -> int:
        """The oldest record a replay after a broker loss may publish again."""
        floor = self._confirmed[0].first if self._confirmed else self._cursor + 1
        if self._replay_pos < self._replay_end:
            floor = min(floor, self._replay_pos + 1)
        return floor

    def _rewind(self, lost_at: float | None) -> None:
        """Plan the replay of what the broker confirmed within the window before the loss.

        A batch is replayed after every loss within the window after its first
        confirmation; its replay does not renew that time, so repeated losses do not
        replay the same records again and again. A replay the loss cut short goes on.
        """
        self._replay_start = self._cursor + 1
        if lost_at is None:
            return
        while self._confirmed and self._confirmed[0].at < lost_at - self._window_s:
            self._confirmed.popleft()
        starts = [self._confirmed[0].first] if self._confirmed else []
        if self._replay_pos < self._replay_end:
            starts.append(self._replay_pos + 1)
            # what went ahead on the lost connection goes again, and again ahead of its
            # device's new records
            for seq, device in self._replayed_early.items():
                self._replay_due[device] = max(seq, self._replay_due.get(device, 0))
        else:
            self._replay_due.clear()
        self._replayed_early.clear()
        if not starts:
            return
        self._replay_pos = min(starts) - 1
        self._replay_end = self._cursor
        self._replay_start = self._replay_pos + 1
        for batch in self._confirmed:
            for device, seq in batch.devices.items():
                self._replay_due[device] = max(seq, self._replay_due.get(device, 0))
        self._counters.inc("mqtt_replayed_batches", len(self._confirmed))
        log.info("broker connection was lost: publishing journal records %d to %d again",
                 self._replay_start, self._replay_end)

    async def _reassert(self, session: Session) -> bool:
        """Re-assert a chunk of the retained alerts on a new connection."""
        if not self._unasserted:
            return False
        sends: list[Coroutine[Any, Any, None]] = []
        while self._unasserted and len(sends) < RETAINED_CHUNK:
            topic = self._unasserted.popleft()
            seq, payload = self._alerts[topic]
            if seq >= self._replay_start:
                continue  # its record is published on this connection anyway, in order
            sends.append(self._link.publish_on(session, topic, payload, retain=True))
        await _all(sends)
        return True

    async def _publish_status(self, session: Session) -> bool:
        if not self._board.changed.is_set():
            return False  # a whole site's statuses are not compared on every turn
        self._board.changed.clear()
        changed = [
            (device, kind, status)
            for device, kind, status in self._board.statuses()
            if self._published_status.get(device) is not status
        ]
        if len(changed) > RETAINED_CHUNK:
            del changed[RETAINED_CHUNK:]
            self._board.changed.set()  # the rest on the next turn
        # together, as a journal batch goes: a whole site coming online at once must not
        # wait for one broker round trip per device
        topics = [self._topics.status(kind, device) for device, kind, _ in changed]
        self._status_topics.update(
            (topic, device) for topic, (device, _, _) in zip(topics, changed, strict=True))
        results = await asyncio.gather(*(
            self._link.publish_on(session, topic, status.encode(), retain=True)
            for topic, (_, _, status) in zip(topics, changed, strict=True)),
            return_exceptions=True)
        for topic, (device, _, status), result in zip(topics, changed, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            if topic in self._retry_at:
                continue  # refused: published again when due
            self._published_status[device] = status
            if self._retry_delay.pop(topic, None) is not None:
                self._taken(topic)
        return bool(changed)

    def _refused(self, topic: str, reason: str) -> None:
        """The broker refused a message on `topic`: a retained alert or status goes again
        when its delay has passed (the link's `refusals` call this)."""
        device = self._status_topics.get(topic)
        if topic not in self._alerts and device is None:
            return  # an event: counted by the link, kept in the journal and the store
        if device is not None:
            self._published_status.pop(device, None)
        first = topic not in self._retry_delay
        delay = min(self._retry_delay.get(topic, REFUSED_RETRY_MIN_S / 2) * 2,
                    REFUSED_RETRY_MAX_S)
        self._retry_delay[topic] = delay
        self._retry_at[topic] = self._clock.monotonic() + delay
        if first:
            log.warning("the broker refused the retained message on %s (%s); it goes again, "
                        "in its newest state, until the broker takes it", topic, reason)
        self._arm_retry()

    def _arm_retry(self) -> None:
        """Wake the sink when the first refused topic is due."""
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if self._retry_at:
            wait = min(self._retry_at.values()) - self._clock.monotonic()
            self._retry_timer = asyncio.get_running_loop().create_task(
                self._wake_retry(wait), name="mqtt_sink.refused")

    async def _wake_retry(self, wait: float) -> None:
        if wait > 0:
            await self._clock.sleep(wait)
        self._retry_due.set()
        self._journal_wake.set()  # a turn of the sink, which publishes what is due

    async def _publish_refused(self, session: Session) -> bool:
        """The refused retained alerts that are due, in their newest state (a status goes
        with the statuses)."""
        if not self._retry_due.is_set():
            return False
        self._retry_due.clear()
        now = self._clock.monotonic()
        due = [topic for topic, at in self._retry_at.items() if at <= now]
        for topic in due:
            del self._retry_at[topic]
        alerts = [topic for topic in due if topic in self._alerts]
        if len(alerts) < len(due):
            self._board.changed.set()  # a status no longer marked published goes again
        try:
            await _all([self._link.publish_on(session, topic, self._alerts[topic][1],
                                               retain=True) for topic in alerts])
        finally:
            self._arm_retry()
        for topic in alerts:
            if topic not in self._retry_at:  # not refused again
                del self._retry_delay[topic]
                self._taken(topic)
        return bool(due)

    def _taken(self, topic: str) -> None:
        self._counters.inc("mqtt_refused_taken")
        log.info("the broker took the retained message on %s", topic)

    def _unsend(self) -> None:
        """Forget what was published and not confirmed: it goes again, from the cursor."""
        for sent in self._in_flight:
            sent.confirmed.cancel()
        self._in_flight.clear()
        self._sent = self._cursor

    async def _publish_journal(self, session: Session) -> bool:
        """A batch of records new to the broker, published without waiting for the
        acknowledgements of those before it (up to BATCHES_IN_FLIGHT batches)."""
        if self._journal.last_seq <= self._sent or len(self._in_flight) >= BATCHES_IN_FLIGHT:
            return False  # nothing new (no need to ask the database), or enough on its way
        batch = await self._journal.read_after(self._sent, self._batch)
        if batch.upto <= self._sent:
            return False
        devices: dict[str, int] = {}
        for entry in batch.entries:
            devices[entry.record.device] = entry.seq
        # a device's replayed records go before its new ones: its order is kept
        await self._replay_devices(session, devices)
        sends = []
        for entry in batch.entries:
            message = self._message(entry)
            if message is None:
                continue
            topic, payload, retain = message
            if retain:
                self._alerts[topic] = (entry.seq, payload)
            sends.append(message)
        # on an error the cursor stays: the batches from it on go again
        first = batch.entries[0].seq if batch.entries else batch.upto
        self._in_flight.append(_Sent(first, batch.upto, devices, len(sends),
                                     self._link.send_all(session, sends)))
        self._sent = batch.upto
        if self._right_of_way is not None and self._right_of_way.held:
            self._right_of_way.published(batch.upto)
        return True

    async def _settle(self) -> bool:
        """Move the cursor past the batches the broker confirmed, in order."""
        moved = False
        while self._in_flight and self._in_flight[0].confirmed.done():
            sent = self._in_flight.popleft()
            if sent.confirmed.cancelled() or sent.confirmed.exception() is not None:
                raise LinkDownError(f"journal records {sent.first} to {sent.upto}")
            if self._window_s > 0 and sent.devices:
                now = self._clock.monotonic()
                self._confirmed.append(_Confirmed(now, sent.first, sent.devices))
                while self._confirmed and self._confirmed[0].at < now - self._window_s:
                    self._confirmed.popleft()
            # delivery is at least once anyway: no fsync of its own for the cursor
            await self._journal.move_cursor(CONSUMER, sent.upto, durable=False)
            self._cursor = sent.upto
            self.moved.set()
            self._counters.inc("mqtt_published", sent.count)
            moved = True
        return moved

    async def _replay(self, session: Session) -> bool:
        """The next batch of the replay, in journal order."""
        if self._replay_pos >= self._replay_end:
            return False
        batch = await self._journal.read_after(self._replay_pos, self._batch)
        upto = min(batch.upto, self._replay_end)
        if batch.upto <= self._replay_pos:
            upto = self._replay_end  # pruned meanwhile: nothing left to send
        await self._send_again(session, [e for e in batch.entries if e.seq <= upto
                                         and e.seq not in self._replayed_early])
        self._replay_pos = upto
        if upto >= self._replay_end:
            self._replay_due.clear()
            self._replayed_early.clear()
        self.moved.set()  # a stop waits for the replay too
        return True

    async def _replay_devices(self, session: Session, devices: dict[str, int]) -> None:
        """Replay now, ahead of the rest, the records of `devices` still due for replay."""
        due = {d: s for d in devices if (s := self._replay_due.get(d, 0)) > self._replay_pos}
        if not due:
            return
        upto = max(due.values())
        found: list[Entry] = []
        position = self._replay_pos
        while position < upto:
            batch = await self._journal.read_after(position, 500)
            if batch.upto <= position:
                break
            found += [e for e in batch.entries if e.seq <= due.get(e.record.device, 0)
                      and e.seq not in self._replayed_early]
            position = batch.upto
        await self._send_again(session, found)
        self._replayed_early.update((e.seq, e.record.device) for e in found)
        for device in due:
            del self._replay_due[device]

    async def _send_again(self, session: Session, entries: list[Entry]) -> None:
        """Publish replayed records; the retained state they carry is older than the
        current one, which `_alerts` keeps."""
        sends = [message for message in map(self._message, entries) if message is not None]
        await self._link.publish_all(session, sends)
        self._counters.inc("mqtt_replayed", len(sends))

    async def _publish_telemetry(self, session: Session) -> bool:
        if self._right_of_way is not None and self._right_of_way.held:
            return False  # an alarm on its way: a journalled record will end the wait
        readings, upto = self._telemetry.peek(CONSUMER, self._telemetry_batch)
        if not readings:
            return False
        topics = self._telemetry_topics
        # QoS 0: telemetry is the class the gateway may drop
        await self._link.publish_fast(session, [
            (topics.get(r.device) or self._telemetry_topic(r), encode(r)) for r in readings])
        self._telemetry.take(CONSUMER, upto)
        return True

    def _telemetry_topic(self, reading: Reading) -> str:
        topic = self._topics.telemetry(reading.kind, reading.device)
        if len(self._telemetry_topics) < TOPICS_KEPT:
            self._telemetry_topics[reading.device] = topic
        return topic

    def _message(self, entry: Entry) -> tuple[str, bytes, bool] | None:
        # the payload is the record as the journal encoded it: not encoded a second time
        record = entry.record
        if isinstance(record, DeviceEvent):
            return (self._topics.event(record.kind, record.device),
                    entry.body or encode(record), False)
        if isinstance(record, Alert):
            key = (record.rule, record.device)
            topic = self._alert_topics.get(key)
            if topic is None:
                topic = self._topics.alert(record.rule, record.device)
                if len(self._alert_topics) < TOPICS_KEPT:
                    self._alert_topics[key] = topic
            return topic, entry.body or encode(record), True
        if isinstance(record, Reading):
            return (self._topics.telemetry(record.kind, record.device),
                    entry.body or encode(record), False)
        return None  # acks are commands, not published back


async def _all(sends: list[Coroutine[Any, Any, None]]) -> None:
    """Issue the publishes in this order (a device's order on the wire) and wait for all;
    the first error is raised once every one has finished."""
    results = await asyncio.gather(*sends, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
