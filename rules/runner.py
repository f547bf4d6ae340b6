"""Feeds journal records to a rule set and journals the alert transitions it produces."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.counters import Counters
from gateway.journal import Journal
from gateway.model import AckCommand, Alert, DeviceEvent, Record
from rules.seam import RuleSet

log = logging.getLogger(__name__)

CONSUMER = "rules"
_STATE_KEY = "rules.state"


@dataclass
class RuleStats:
    evaluations: int = 0
    seconds: float = 0.0


class RuleRunner:
    """Consumes the journal with its own cursor; transitions, cursor and state commit together."""

    def __init__(
        self,
        journal: Journal,
        rules: RuleSet,
        on_transition: Callable[[Alert], None],
        counters: Counters,
        batch: int = 256,
    ) -> None:
        self._counters = counters
        self._journal = journal
        self._rules = rules
        self._on_transition = on_transition
        self._batch = batch
        self._wake = journal.listen()
        self._idle = asyncio.Event()
        self._cursor = 0
        self.stats = RuleStats()

    async def restore(self) -> None:
        self._cursor = await self._journal.cursor(CONSUMER)
        data = await self._journal.read_state(_STATE_KEY)
        if data is not None:
            self._rules.restore(data)
            log.info("restored %d active alert(s)", len(self._rules.active()))

    async def run(self) -> None:
        while True:
            batch = await self._journal.read(CONSUMER, self._batch)
            if batch.upto <= self._cursor:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            self._idle.clear()
            transitions: list[Alert] = []
            started = time.perf_counter()
            for entry in batch.entries:
                transitions += self._evaluate(entry.seq, entry.record)
            self.stats.seconds += time.perf_counter() - started
            self.stats.evaluations += len(batch.entries)
            await self._journal.commit(
                transitions,
                cursor=(CONSUMER, batch.upto),
                state={_STATE_KEY: self._rules.snapshot()},
            )
            self._cursor = batch.upto
            for alert in transitions:
                log.info("alert %s %s on %s: %s", alert.rule, alert.state, alert.device,
                         alert.message)
                self._on_transition(alert)

    def _evaluate(self, seq: int, record: Record) -> list[Alert]:
        try:
            if isinstance(record, DeviceEvent):
                return self._rules.on_event(record)
            if isinstance(record, AckCommand):
                return self._rules.on_ack(record)
        except Exception:  # one record a rule cannot handle must not stop all rules
            self._counters.inc("rule_errors")
            log.exception("rules failed on journal record %d (%s); skipped", seq,
                          type(record).__name__)
        return []

    async def caught_up(self) -> None:
        """Wait until every journalled record has been evaluated."""
        while not (self._idle.is_set() and self._cursor >= self._journal.last_seq):
            self._idle.clear()
            await self._idle.wait()
