"""Delivers notification intents: apprise URLs (webhooks, DingTalk, WeCom, Feishu, email,
SMS gateways) and mqtt://topic on the gateway's own broker.

Intents come from the journal in order, with their own cursor. Every target of every intent
is delivered by a task of its own, so a target that does not answer (the broker down, a mail
server that hangs) delays no other target and no later intent; what goes to one target goes
in journal order (an alert's end never overtakes its start). Each attempt has a time
limit; a target that keeps failing is retried with backoff until `give_up_s`. A target done
(delivered or given up) is recorded in the journal at once, so a crash repeats at most the
attempts in flight, never a target already done. The cursor moves past an intent once every
one of its targets is done. Every message carries the intent's id (`ref`), so a receiver
can recognise a repeat.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import Notify
from gateway.core.waiting import first_of
from gateway.journal import Batch, Journal

log = logging.getLogger(__name__)

CONSUMER = "notify"
DONE_KEY = "notify.done:"  # + intent id: the indices of its targets that are done
READ_BATCH = 100
IN_FLIGHT = 256  # intents being delivered at once; reading waits while this many are open
ATTEMPT_S = 30.0  # longest one attempt to reach one target may take
GIVE_UP_S = 600.0  # a target failing for this long is given up for the intent
MQTT_TARGET = "mqtt://"  # a target on the gateway's own broker; every other goes by apprise


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None: ...


@dataclass(slots=True, eq=False)
class _Delivery:
    """One intent on its way: the indices of its targets not yet done."""

    seq: int
    intent: Notify
    left: set[int] = field(default_factory=set)

    @property
    def key(self) -> str:
        return DONE_KEY + self.intent.id

    def done(self) -> bytes:
        return json.dumps(sorted(set(range(len(self.intent.targets))) - self.left)).encode()


def needs_apprise(targets: Iterable[str]) -> bool:
    """Whether any of `targets` is delivered through apprise."""
    return any(not target.startswith(MQTT_TARGET) for target in targets)


class NotifySink:
    """`apprise_at_start`: load apprise (about 13 MiB) when the sink starts rather than at the
    first message; for a gateway whose contacts have apprise targets."""

    def __init__(self, journal: Journal, publisher: Publisher, clock: Clock,
                 counters: Counters, give_up_s: float = GIVE_UP_S,
                 attempt_s: float = ATTEMPT_S, *, apprise_at_start: bool = False) -> None:
        self._journal = journal
        self._publisher = publisher
        self._clock = clock
        self._counters = counters
        self._give_up_s = give_up_s
        self._attempt_s = attempt_s
        self._apprise_at_start = apprise_at_start
        self._wake = journal.listen()
        self._open: dict[int, _Delivery] = {}  # by journal seq: targets still to do
        self._finished: dict[int, _Delivery] = {}  # done, but the cursor is not past yet
        self._latest: dict[str, asyncio.Task[None]] = {}  # per target: its last delivery
        self._read_upto = 0  # intents up to here are open, finished or passed
        self._room = asyncio.Event()  # set when an intent is finished
        self.cursor = 0
        self.moved = asyncio.Event()  # set whenever the cursor advances
        # told of every target done: (intent, delivered); the console's timelines
        self.listeners: list[Callable[[Notify, bool], None]] = []

    async def run(self) -> None:
        self.cursor = self._read_upto = await self._journal.cursor(CONSUMER)
        self._open.clear()
        self._finished.clear()
        self._latest.clear()
        async with asyncio.TaskGroup() as deliveries:
            if self._apprise_at_start:
                deliveries.create_task(_warm_up(), name="gw.notify.warm_up")
            while True:
                if len(self._open) >= IN_FLIGHT:
                    self._room.clear()
                    await self._room.wait()
                    continue
                batch = (await self._journal.read_after(self._read_upto, READ_BATCH)
                         if self._journal.last_seq > self._read_upto
                         else Batch([], self._read_upto))
                if batch.upto <= self._read_upto:
                    await first_of(self._wake)
                    self._wake.clear()
                    continue
                for entry in batch.entries:
                    if isinstance(entry.record, Notify):
                        await self._start(entry.seq, entry.record, deliveries)
                self._read_upto = batch.upto
                await self._move({})

    async def _start(self, seq: int, intent: Notify, deliveries: asyncio.TaskGroup) -> None:
        if not intent.targets:
            self._counters.inc("notify_no_target", group=intent.group)
            self._counters.log_once(log, ("notify", "no_target", intent.group),
                                    "nobody set up for contact group %s: alert %s not sent",
                                    intent.group, intent.alert_id)
            return
        delivery = _Delivery(seq, intent, set(range(len(intent.targets))))
        stored = await self._journal.read_state(delivery.key)
        if stored is not None:  # a restart: what was done before it is not done again
            delivery.left -= set(json.loads(stored))
        if not delivery.left:
            self._finished[seq] = delivery
            return
        self._open[seq] = delivery
        for index in sorted(delivery.left):
            target = intent.targets[index]
            task = deliveries.create_task(
                self._deliver(delivery, index, self._latest.get(target)),
                name=f"gw.notify[{intent.id}#{index}]")
            self._latest[target] = task
            task.add_done_callback(functools.partial(_forget, self._latest, target))

    async def _deliver(self, delivery: _Delivery, index: int,
                       previous: asyncio.Task[None] | None) -> None:
        intent = delivery.intent
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # the same target's earlier intent goes first
        delivered = await self._to(intent.targets[index], intent)
        delivery.left.discard(index)
        if not delivery.left:
            del self._open[delivery.seq]
            self._finished[delivery.seq] = delivery
            self._room.set()
        # the target is done for good: a restart must not send it again
        await self._move({delivery.key: delivery.done()})
        self._counters.inc("notified" if delivered else "notify_failed", group=intent.group)
        for listener in self.listeners:
            listener(intent, delivered)

    async def _move(self, state: dict[str, bytes | None]) -> None:
        """Commit `state` and move the cursor to just before the oldest open intent."""
        upto = min(self._open) - 1 if self._open else self._read_upto
        for seq in [seq for seq in self._finished if seq <= upto]:
            state[self._finished.pop(seq).key] = None  # passed: nothing to remember
        moved = upto > self.cursor
        if state:
            await self._journal.commit(cursor=(CONSUMER, upto) if moved else None, state=state)
        elif moved:
            # only records that are not intents (or intents nobody could be told) were
            # passed: a replay of them after a power cut sends nothing, so no fsync
            await self._journal.move_cursor(CONSUMER, upto, durable=False)
        if moved:
            self.cursor = max(self.cursor, upto)
            self.moved.set()

    async def _to(self, target: str, intent: Notify) -> bool:
        """Deliver to one target, retrying; False once it was given up."""
        backoff = Backoff(1.0, 60.0)
        started = self._clock.monotonic()
        while True:
            try:
                await self._attempt(target, intent)
            except Exception as exc:  # a failing target is retried, not fatal
                if self._clock.monotonic() - started >= self._give_up_s:
                    log.error("giving up on %s for %s after %.0f s: %s", _scheme(target),
                              intent.id, self._give_up_s, exc)
                    return False
                self._counters.inc("notify_retries", group=intent.group)
                await self._clock.sleep(backoff.next_delay())
                continue
            return True

    async def _attempt(self, target: str, intent: Notify) -> None:
        """One try, within `attempt_s` of the clock."""
        if target.startswith("mqtt://"):
            sending = asyncio.ensure_future(self._publisher.publish(
                target.removeprefix("mqtt://"), msgspec.json.encode(intent)))
        else:
            sending = asyncio.ensure_future(_apprise(target, intent))
        limit = asyncio.ensure_future(self._clock.sleep(self._attempt_s))
        try:
            done, _ = await asyncio.wait((sending, limit), return_when=asyncio.FIRST_COMPLETED)
        finally:
            limit.cancel()
            sending.cancel()  # nothing once it is done
        if sending not in done:
            raise TimeoutError(f"no answer within {self._attempt_s:g} s")
        sending.result()


def _forget(latest: dict[str, asyncio.Task[None]], target: str, task: asyncio.Task[None]
            ) -> None:
    if latest.get(target) is task:
        del latest[target]


async def _warm_up() -> None:
    """Load apprise and its plugins off the event loop now: that takes a second or more, and
    the first alarm after a start should not wait for it."""
    try:
        await asyncio.to_thread(_sender, "json://localhost")
    except Exception as exc:  # the first real message reports it properly
        log.warning("notification library not usable: %s", exc)


def _sender(target: str) -> Any:
    """An apprise sender for `target` (blocking: call from a thread)."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(target):
        raise ValueError(f"not a usable notification URL ({_scheme(target)}://...)")
    return sender


async def _apprise(target: str, intent: Notify) -> None:
    def send() -> bool:
        return bool(_sender(target).notify(
            title=f"[{intent.severity}] {intent.rule} {intent.device}",
            body=f"{intent.message}\n(ref {intent.id})"))

    # apprise does its network calls synchronously: keep them off the event loop
    if not await asyncio.to_thread(send):
        raise ConnectionError(f"{_scheme(target)} target did not accept the message")


def _scheme(target: str) -> str:
    # URLs carry tokens and passwords: only the scheme is ever logged
    return target.split("://", 1)[0]
