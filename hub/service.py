"""One hub process: takes batches from the city's durable pull consumer, writes their points
to the central store, records alert transitions in the city-wide state, then acknowledges.

Any number of hub processes share the consumer: JetStream hands each batch to one of them,
and what a process took and did not acknowledge (it was killed) goes to another once the
consumer's `ack_wait_s` has passed. Nothing is acknowledged before it is in the store, so a
redelivery writes a point again, onto itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from gateway.city_connection import cancelling, connect
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock, SystemClock
from gateway.core.config import Location
from gateway.core.counters import Counters
from gateway.core.model import Alert
from gateway.sinks.points import PointMaker
from gateway.sinks.store_writer import writer_for
from hub.acks import send_ack
from hub.alerts import AlertContention, CityAlert, CityAlerts
from hub.board import BoardServer
from hub.config import HubConfig
from hub.feed import EventFeed
from hub.fetching import FetchStalledError, drop, fetch_bounded
from hub.records import Arrival, BadParcel, read
from hub.store import CityStore, KeepAlive

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
FORGET_EVERY_S = 600.0
BACKLOG_EVERY_S = 5.0
REDELIVERED_KEPT = 1000  # stream sequences of the latest redeliveries, on /api/status


class HubSetupError(Exception):
    """The cluster lacks what `scgw hub init` makes."""


class Hub:
    """`run` until cancelled (or `stop`)."""

    def __init__(self, config: HubConfig, env: Mapping[str, str] | None = None,
                 clock: Clock | None = None, name: str | None = None) -> None:
        self.config = config
        self._env = os.environ if env is None else env
        self.clock = clock or SystemClock()
        self.name = name or f"hub-{os.getpid()}"
        self.counters = Counters()
        self.alerts: CityAlerts | None = None
        self.feed: EventFeed | None = None
        self.board: BoardServer | None = None
        self.ready = asyncio.Event()  # consuming, and the board is up
        # per compound: its points, and the places its devices came with
        self._points: dict[tuple[str, str], tuple[PointMaker, dict[str, Location]]] = {}
        self._stop = asyncio.Event()
        # the consumer's backlog as last seen (every BACKLOG_EVERY_S): the board shows it
        self.backlog: dict[str, int] = {}
        self._backlog_at = -BACKLOG_EVERY_S
        # the stream sequences this process took and has not settled yet (a batch), and
        # the latest it was given again (another process took them first and did not
        # acknowledge them: killed, or its acknowledgement lost)
        self.in_hand: set[int] = set()
        self.redelivered: deque[int] = deque(maxlen=REDELIVERED_KEPT)

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        """What /api/status shows besides the counters."""
        return {"backlog": self.backlog, "in_hand": sorted(self.in_hand),
                "redelivered": list(self.redelivered)}

    async def run(self) -> None:
        nc = await connect(self.config.nats, self._env, f"scgw-{self.name}")
        store = CityStore(self.config.store, writer_for(self.config.store, self._env),
                          self.clock, self.counters)
        stopping: asyncio.Task[bool] | None = None
        try:
            js = nc.jetstream()
            self.alerts = CityAlerts(await self._bucket(js))
            self.feed = EventFeed(js, self.config.stream.name, self.config.board.events_kept)
            self.board = BoardServer(self.alerts, self.config.board, self.counters, self.clock,
                                     self.status, self.feed,
                                     lambda alert, user: send_ack(
                                         nc, alert, user, self.config.board.ack_timeout_s))
            stopping = asyncio.create_task(self._stop.wait(), name=f"{self.name}.stop")
            async with asyncio.TaskGroup() as tasks:
                work = [
                    tasks.create_task(self.alerts.watch(), name=f"{self.name}.alerts"),
                    tasks.create_task(self.feed.follow(), name=f"{self.name}.feed"),
                    tasks.create_task(self.board.run(), name=f"{self.name}.board"),
                    tasks.create_task(self._consume(js, store), name=f"{self.name}.consume"),
                    tasks.create_task(self._forget(), name=f"{self.name}.forget"),
                ]
                await self.board.ready.wait()
                self.ready.set()
                await stopping
                for task in work:
                    task.cancel()
        finally:
            if stopping is not None:
                stopping.cancel()
            await store.close()
            await nc.close()

    async def _bucket(self, js: JetStreamContext) -> KeyValue:
        """The alert bucket, once the cluster answers (it may be electing leaders)."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                return await js.key_value(self.config.alerts.bucket)
            except BucketNotFoundError:
                raise HubSetupError(f"no alert bucket {self.config.alerts.bucket} in the "
                                    "cluster: run `scgw hub init` first") from None
            except (nats.errors.Error, OSError) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                delay = backoff.next_delay()
                log.warning("the alert bucket cannot be read yet (%s: %s); again in %.1f s",
                            type(exc).__name__, exc, delay)
                await self.clock.sleep(delay)

    async def _consume(self, js: JetStreamContext, store: CityStore) -> None:
        consumer = self.config.consumer
        backoff = Backoff(0.2, 5.0)
        sub = None
        while True:
            if cancelling():
                raise asyncio.CancelledError
            try:
                if sub is None:
                    sub = await js.pull_subscribe_bind(durable=consumer.durable,
                                                       stream=self.config.stream.name)
                msgs = await fetch_bounded(sub, consumer.batch, consumer.fetch_wait_s)
            except FetchStalledError as exc:
                self.counters.inc("hub_fetch_errors")
                log.warning("%s: bound to the consumer again", exc)
                await drop(sub)
                sub = None
                continue
            except TimeoutError:  # nats' own is one too
                await self._look_at_backlog(sub)
                continue  # nothing waiting
            except (nats.errors.Error, OSError) as exc:
                self.counters.inc("hub_fetch_errors")
                delay = backoff.next_delay()
                self.counters.log_every(log, ("hub", "fetch"), self.clock.monotonic(), 10.0,
                                        "fetch from the stream failed (%s: %s); again in %.1f s",
                                        type(exc).__name__, exc, delay)
                await self.clock.sleep(delay)
                continue
            backoff.reset()
            await self.handle(msgs, store)
            await self._look_at_backlog(sub)

    async def _look_at_backlog(self, sub: JetStreamContext.PullSubscription | None) -> None:
        """Now and then: what waits in the stream for the hubs (all processes together)."""
        now = self.clock.monotonic()
        if sub is None or now - self._backlog_at < BACKLOG_EVERY_S:
            return
        self._backlog_at = now
        try:
            info = await sub.consumer_info()
        except (nats.errors.Error, OSError):
            if cancelling():
                raise asyncio.CancelledError from None
            return  # the next look
        self.backlog = {"pending": info.num_pending or 0,
                        "unacknowledged": info.num_ack_pending or 0,
                        "redelivered": info.num_redelivered or 0}

    async def handle(self, msgs: list[Msg], store: CityStore) -> None:
        """One batch: store, alert state, acknowledgements, in that order."""
        arrivals: list[tuple[Msg, Arrival]] = []
        for msg in msgs:
            self._took(msg)
            headers = msg.headers or {}
            try:
                arrivals.append((msg, read(msg.subject, msg.data, headers.get(MSG_ID))))
            except BadParcel as exc:
                self.counters.inc("hub_rejected", reason=exc.reason)
                self.counters.log_once(log, ("hub", "rejected", exc.reason),
                                       "a message was refused: %s", exc)
                await self._settle(msg, term=True)
        lines = [line for _, arrival in arrivals
                 if (line := self._point(arrival)) is not None]

        async def keep_alive() -> None:
            for msg, _ in arrivals:
                await self._settle(msg, progress=True)

        await store.write(lines, keep_alive)
        assert self.alerts is not None
        for _, arrival in arrivals:
            if isinstance(arrival.record, Alert):
                district, site = arrival.compound
                place = arrival.place.model_dump(exclude_none=True) if arrival.place else None
                await self._apply(CityAlert.of(district, site, arrival.record, place),
                                  keep_alive)
        for msg, arrival in arrivals:
            self.counters.inc("hub_records", kind=type(arrival.record).__name__.lower())
            await self._settle(msg)

    async def _apply(self, alert: CityAlert, keep_alive: KeepAlive) -> None:
        assert self.alerts is not None
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                if await self.alerts.apply(alert):
                    self.counters.inc("hub_alert_transitions")
                return
            except (nats.errors.Error, OSError, AlertContention) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                delay = backoff.next_delay()
                self.counters.log_every(log, ("hub", "alerts"), self.clock.monotonic(), 10.0,
                                        "alert state not written (%s); again in %.1f s",
                                        exc, delay)
                await keep_alive()
                await self.clock.sleep(delay)

    def _took(self, msg: Msg) -> None:
        try:
            meta = msg.metadata
        except nats.errors.NotJSMessageError:  # not from a consumer: nothing to tell
            return
        self.in_hand.add(meta.sequence.stream)
        if meta.num_delivered > 1:
            self.counters.inc("hub_redelivered")
            self.redelivered.append(meta.sequence.stream)

    def _let_go(self, msg: Msg) -> None:
        with contextlib.suppress(nats.errors.NotJSMessageError):
            self.in_hand.discard(msg.metadata.sequence.stream)

    async def _settle(self, msg: Msg, *, term: bool = False, progress: bool = False) -> None:
        """Acknowledge (or terminate, or ask for more time for) one message. One that is
        lost on the way is delivered again later, and written again onto itself."""
        try:
            if progress:
                await msg.in_progress()
                return
            self._let_go(msg)
            if term:
                await msg.term()
            else:
                await msg.ack()
        except (nats.errors.Error, OSError) as exc:
            if cancelling():
                raise asyncio.CancelledError from None
            self.counters.inc("hub_ack_errors")
            log.debug("acknowledgement not sent: %s", exc)

    def _point(self, arrival: Arrival) -> str | None:
        """The record's point, tagged with its compound and the place it came with."""
        compound = arrival.compound
        found = self._points.get(compound)
        if found is None:
            district, site = compound
            places: dict[str, Location] = {}
            found = self._points[compound] = (PointMaker(site, places.get,
                                                         {"district": district}), places)
        maker, places = found
        if arrival.place is not None:
            places[arrival.record.device] = arrival.place
        return maker.line(arrival.record)

    async def _forget(self) -> None:
        assert self.alerts is not None
        kept_ms = round(self.config.alerts.resolved_kept_h * 3_600_000)
        while True:
            await self.clock.sleep(FORGET_EVERY_S)
            try:
                await self.alerts.forget_resolved(self.clock.now_ms() - kept_ms)
            except (nats.errors.Error, OSError) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                log.warning("resolved alerts not forgotten: %s", exc)
