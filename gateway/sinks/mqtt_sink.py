"""Publishes journalled events and alerts, telemetry and device status on MQTT.

This task is the only publisher, so retained topics are written in one order. After every
new connection it re-asserts the retained state (gateway online, device status, active
alerts) first, because the broker may have restarted without persistence.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from gateway.clock import Clock
from gateway.counters import Counters
from gateway.journal import Journal
from gateway.model import Alert, DeviceEvent, Reading, Record, encode
from gateway.mqtt_link import LinkDownError, MqttLink, Session
from gateway.status import Status, StatusBoard
from gateway.telemetry import TelemetryBuffer
from gateway.topics import Topics
from gateway.waiting import first_of

log = logging.getLogger(__name__)

CONSUMER = "mqtt"
TELEMETRY_BATCH_S = 0.005  # physical time: how long telemetry may wait to share a turn


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
        batch: int = 100,
        telemetry_batch: int = 2000,
    ) -> None:
        self._clock = clock
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
        self._alerts: dict[str, bytes] = {}  # retained alert topic -> current state
        self._published_status: dict[str, Status] = {}
        self._cursor = 0  # durable: everything up to here was confirmed by the broker
        self._position = 0  # where reading goes on; behind the cursor while replaying
        self._confirmed: deque[tuple[float, int]] = deque()  # (when, first seq) per batch
        self.moved = asyncio.Event()  # set whenever the cursor advances

    def seed(self, alerts: list[Alert]) -> None:
        """Active alerts restored at start, re-asserted on every connection."""
        for alert in alerts:
            self._alerts[self._topics.alert(alert.rule, alert.device)] = encode(alert)

    async def run(self) -> None:
        self._cursor = self._position = await self._journal.cursor(CONSUMER)
        current = 0
        while True:
            session = await self._link.session()
            try:
                if session.number != current:
                    self._rewind(self._link.previous_loss)
                    await self._reassert(session)
                    current = session.number
                busy = await self._publish_status(session)
                busy = await self._publish_journal(session) or busy
                busy = await self._publish_telemetry(session) or busy
            except LinkDownError:
                continue
            if not busy:
                await first_of(self._journal_wake, self._telemetry_wake, self._board.changed,
                               session.lost)
                telemetry_only = not (self._journal_wake.is_set() or self._board.changed.is_set()
                                      or session.lost.done())
                self._journal_wake.clear()
                self._telemetry_wake.clear()
                if telemetry_only:
                    # readings arrive a network packet at a time under a steady load: a turn
                    # per TELEMETRY_BATCH_S publishes them in batches instead of one turn
                    # each; journalled records (alerts) are never held back
                    await asyncio.sleep(TELEMETRY_BATCH_S)
                # board.changed is cleared where the statuses are read, not here: a change
                # during the wait must still be published

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def replay_floor(self) -> int:
        """The oldest record a replay after a broker loss may publish again."""
        return self._confirmed[0][1] if self._confirmed else self._cursor + 1

    def _rewind(self, lost_at: float | None) -> None:
        """Go back to the first batch the broker confirmed within the window before the loss."""
        if lost_at is None:
            return
        since = lost_at - self._window_s
        while self._confirmed and self._confirmed[0][0] < since:
            self._confirmed.popleft()
        if self._confirmed:
            first = self._confirmed[0][1]
            self._position = min(self._position, first - 1)
            self._counters.inc("mqtt_replayed_batches", len(self._confirmed))
            log.info("broker connection was lost: publishing again from journal record %d",
                     first)
        self._confirmed.clear()

    async def _reassert(self, session: Session) -> None:
        self._published_status.clear()
        self._board.changed.set()  # every status again, on the new connection
        await self._link.publish_on(session, self._topics.gateway_status,
                                    Status.ONLINE.encode(), retain=True)
        for topic, payload in list(self._alerts.items()):
            await self._link.publish_on(session, topic, payload, retain=True)

    async def _publish_status(self, session: Session) -> bool:
        if not self._board.changed.is_set():
            return False  # a whole site's statuses are not compared on every turn
        self._board.changed.clear()
        changed = [
            (device, kind, status)
            for device, kind, status in self._board.statuses()
            if self._published_status.get(device) is not status
        ]
        # together, as a journal batch goes: a whole site coming online at once must not
        # wait for one broker round trip per device
        results = await asyncio.gather(*(
            self._link.publish_on(session, self._topics.status(kind, device), status.encode(),
                                  retain=True)
            for device, kind, status in changed), return_exceptions=True)
        for (device, _, status), result in zip(changed, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            self._published_status[device] = status
        return bool(changed)

    async def _publish_journal(self, session: Session) -> bool:
        if self._journal.last_seq <= self._position:
            return False  # nothing new: no need to ask the database
        batch = await self._journal.read_after(self._position, self._batch)
        if batch.upto <= self._position:
            return False
        sends = []
        for entry in batch.entries:
            message = self._message(entry.record)
            if message is None:
                continue
            topic, payload, retain = message
            if retain:
                self._alerts[topic] = payload
            # issued in journal order, so per-device order is kept on the wire
            sends.append(asyncio.ensure_future(
                self._link.publish_on(session, topic, payload, qos=1, retain=retain)))
        results = await asyncio.gather(*sends, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]  # the cursor stays: the whole batch goes again, at least once
        self._position = batch.upto
        if self._window_s > 0:
            self._confirmed.append((self._clock.monotonic(), batch.entries[0].seq
                                    if batch.entries else batch.upto))
            while self._confirmed and self._confirmed[0][0] < self._clock.monotonic() - \
                    self._window_s:
                self._confirmed.popleft()
        if batch.upto > self._cursor:
            # delivery is at least once anyway: no fsync of its own for the cursor
            await self._journal.move_cursor(CONSUMER, batch.upto, durable=False)
            self._cursor = batch.upto
            self.moved.set()
        self._counters.inc("mqtt_published", len(sends))
        return True

    async def _publish_telemetry(self, session: Session) -> bool:
        readings, upto = self._telemetry.peek(CONSUMER, self._telemetry_batch)
        if not readings:
            return False
        telemetry = self._topics.telemetry
        # QoS 0: telemetry is the class the gateway may drop
        await self._link.publish_fast(
            session, [(telemetry(r.kind, r.device), encode(r)) for r in readings])
        self._telemetry.take(CONSUMER, upto)
        return True

    def _message(self, record: Record) -> tuple[str, bytes, bool] | None:
        if isinstance(record, DeviceEvent):
            return self._topics.event(record.kind, record.device), encode(record), False
        if isinstance(record, Alert):
            topic = self._topics.alert(record.rule, record.device)
            return topic, encode(record), True
        if isinstance(record, Reading):
            return self._topics.telemetry(record.kind, record.device), encode(record), False
        return None  # acks are commands, not published back
