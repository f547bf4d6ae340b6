"""The city's latest events, for the board: read from the stream itself, in its order.

The stream holds every compound's records once (deduplicated by message id), whichever hub
process stored them: each hub process follows it with an ephemeral consumer of its own (in
memory, one replica, nothing acknowledged) and keeps the last `kept` events, and how many
events of each compound it has read. At start it reads back the stream's
last `kept` messages, so a process started again shows what the others show. A consumer
lost with its node, or one that stays silent while the stream holds messages it has not
given (nats-server 2.9 can leave a consumer like that after its node or the stream's leader
was lost), is made again from the next sequence.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.js import api
from nats.js.client import JetStreamContext

from gateway.city_connection import cancelling
from gateway.core.backoff import Backoff
from gateway.core.model import DeviceEvent
from hub.fetching import FetchStalledError, drop, fetch_bounded
from hub.records import BadParcel, read

log = logging.getLogger(__name__)

FETCH = 500
FETCH_WAIT_S = 1.0
LOOK_EVERY = 5  # empty fetches before asking whether the consumer still gives what waits
INACTIVE_S = 30.0  # a consumer whose process is gone is removed by the cluster after this


class EventFeed:
    """`follow` until cancelled; `events` (oldest first) and `counts` by compound."""

    def __init__(self, js: JetStreamContext, stream: str, kept: int) -> None:
        self._js = js
        self._stream = stream
        self.events: deque[dict[str, Any]] = deque(maxlen=kept)
        self.counts: dict[tuple[str, str], int] = {}
        self.last_seq = 0
        self.synced = asyncio.Event()  # caught up with the stream once
        self.listeners: list[Callable[[], None]] = []

    async def follow(self) -> None:
        backoff = Backoff(0.2, 5.0)
        sub: JetStreamContext.PullSubscription | None = None
        empty = 0
        while True:
            try:
                if sub is None:
                    sub = await self._subscribe()
                    empty = 0
                msgs = await fetch_bounded(sub, FETCH, FETCH_WAIT_S)
            except FetchStalledError as exc:
                log.info("feed: %s; following the stream again from %d", exc,
                         self.last_seq + 1)
                await drop(sub)  # an ephemeral consumer: gone after INACTIVE_S
                sub = None
                continue
            except TimeoutError:
                if cancelling():
                    raise asyncio.CancelledError from None
                self.synced.set()  # nothing more waiting (or the consumer is gone)
                empty += 1
                if sub is not None and empty >= LOOK_EVERY:
                    empty = 0
                    sub = await self._checked(sub)
                continue
            except (nats.errors.Error, OSError) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                await drop(sub)  # an ephemeral consumer: gone after INACTIVE_S
                sub = None
                delay = backoff.next_delay()
                log.debug("feed: reading the stream failed (%s: %s); again in %.1f s",
                          type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            empty = 0
            self._take(msgs)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        start = self.last_seq + 1
        if not self.last_seq:
            info = await self._js.stream_info(self._stream)
            start = max(info.state.first_seq, info.state.last_seq - (self.events.maxlen or 0)
                        + 1, 1)
        return await self._js.pull_subscribe(
            "", stream=self._stream, config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start, inactive_threshold=INACTIVE_S, mem_storage=True,
                num_replicas=1))

    async def _checked(self, sub: JetStreamContext.PullSubscription
                       ) -> JetStreamContext.PullSubscription | None:
        """`sub`, or None when its consumer is gone (its node was lost) or silent: the
        stream's leader holds messages past the last one read, and LOOK_EVERY fetches in a
        row gave nothing."""
        try:
            await sub.consumer_info()
            info = await self._js.stream_info(self._stream)
        except (nats.errors.Error, OSError):
            if cancelling():
                raise asyncio.CancelledError from None
            await drop(sub)  # an ephemeral consumer: gone after INACTIVE_S
            return None
        state = info.state
        if state.last_seq <= self.last_seq or state.first_seq > state.last_seq:
            return sub  # nothing waits (or the stream was purged: nothing will come)
        log.info("feed: the stream holds up to %d, its consumer gave nothing past %d in %d "
                 "fetches; following the stream again from %d", state.last_seq,
                 self.last_seq, LOOK_EVERY, self.last_seq + 1)
        await drop(sub)
        return None

    def _take(self, msgs: list[Any]) -> None:
        changed = False
        for msg in msgs:
            try:
                seq = msg.metadata.sequence.stream
            except nats.errors.NotJSMessageError:
                continue
            if seq <= self.last_seq:
                continue  # read again by a consumer made anew
            self.last_seq = seq
            headers = msg.headers or {}
            try:
                arrival = read(msg.subject, msg.data, headers.get("Nats-Msg-Id"))
            except BadParcel:
                continue  # the hub that stores it counts it
            record = arrival.record
            if not isinstance(record, DeviceEvent):
                continue
            district, site = arrival.compound
            place = arrival.place.model_dump(exclude_none=True) if arrival.place else None
            self.events.append({
                "compound": f"{district}/{site}", "district": district, "site": site,
                "id": record.id, "ts": record.ts, "kind": record.kind.value,
                "device": record.device, "type": record.type, "cls": record.cls.value,
                "place": place or None, "seq": seq})
            self.counts[arrival.compound] = self.counts.get(arrival.compound, 0) + 1
            changed = True
        if changed:
            for listener in self.listeners:
                listener()
