"""Delivers notification intents: apprise URLs (webhooks, DingTalk, WeCom, Feishu, email,
SMS gateways) and mqtt://topic on the gateway's own broker.

Intents come from the journal in order, with their own cursor, which moves past each
intent as soon as it was delivered: a crash can repeat at most the one intent being sent.
Every message carries the intent's id (`ref`), so a receiver can recognise a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import msgspec

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.counters import Counters
from gateway.journal import Journal
from gateway.model import Notify
from gateway.waiting import first_of

log = logging.getLogger(__name__)

CONSUMER = "notify"


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None: ...


class NotifySink:
    def __init__(self, journal: Journal, publisher: Publisher, clock: Clock,
                 counters: Counters, give_up_s: float = 600.0) -> None:
        self._journal = journal
        self._publisher = publisher
        self._clock = clock
        self._counters = counters
        self._give_up_s = give_up_s
        self._wake = journal.listen()
        self.cursor = 0
        self.moved = asyncio.Event()  # set whenever the cursor advances

    async def run(self) -> None:
        self.cursor = await self._journal.cursor(CONSUMER)
        while True:
            batch = await self._journal.read(CONSUMER, 100)
            if batch.upto <= self.cursor:
                await first_of(self._wake)
                self._wake.clear()
                continue
            for entry in batch.entries:
                if isinstance(entry.record, Notify):
                    await self._deliver(entry.record)
                    await self._journal.move_cursor(CONSUMER, entry.seq)
                    self.cursor = entry.seq
            await self._journal.move_cursor(CONSUMER, batch.upto)
            self.cursor = batch.upto
            self.moved.set()

    async def _deliver(self, intent: Notify) -> None:
        if not intent.targets:
            self._counters.inc("notify_no_target", group=intent.group)
            self._counters.log_once(log, ("notify", "no_target", intent.group),
                                    "nobody set up for contact group %s: alert %s not sent",
                                    intent.group, intent.alert_id)
            return
        await asyncio.gather(*(self._to(target, intent) for target in intent.targets))

    async def _to(self, target: str, intent: Notify) -> None:
        backoff = Backoff(1.0, 60.0)
        started = self._clock.monotonic()
        while True:
            try:
                if target.startswith("mqtt://"):
                    await self._publisher.publish(target.removeprefix("mqtt://"),
                                                  msgspec.json.encode(intent))
                else:
                    await self._apprise(target, intent)
            except Exception as exc:  # a failing target is retried, not fatal
                if self._clock.monotonic() - started >= self._give_up_s:
                    self._counters.inc("notify_failed", group=intent.group)
                    log.error("giving up on %s for %s after %.0f s: %s", _scheme(target),
                              intent.id, self._give_up_s, exc)
                    return
                self._counters.inc("notify_retries", group=intent.group)
                await self._clock.sleep(backoff.next_delay())
                continue
            self._counters.inc("notified", group=intent.group)
            return

    @staticmethod
    async def _apprise(target: str, intent: Notify) -> None:
        import apprise

        def send() -> bool:
            sender = apprise.Apprise()
            if not sender.add(target):
                raise ValueError(f"not a usable notification URL ({_scheme(target)}://...)")
            return bool(sender.notify(
                title=f"[{intent.severity}] {intent.rule} {intent.device}",
                body=f"{intent.message}\n(ref {intent.id})"))

        # apprise does its network calls synchronously: keep them off the event loop
        if not await asyncio.to_thread(send):
            raise ConnectionError(f"{_scheme(target)} target did not accept the message")


def _scheme(target: str) -> str:
    # URLs carry tokens and passwords: only the scheme is ever logged
    return target.split("://", 1)[0]
