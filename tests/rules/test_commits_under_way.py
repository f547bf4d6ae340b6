"""The rules evaluate their next turn while the last one's commit is under way; when that
commit fails, the ones queued after it are refused with it, nothing of either is passed on,
and both come again once the journal takes them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.model import Alert, AlertState, DeviceKind, Reading
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from rules.engine import RuleEngine
from rules.runner import RuleRunner
from tests.helpers import eventually
from tests.rules.sim import CONTACTS, DIRECTORY, T0, default_pack
from tests.rules.test_runner import _records, _restarted


def _fever(n: int) -> Reading:
    return Reading(id=f"r{n}", ts=T0 + n, kind=DeviceKind.TEMP_GATE, device=f"gate-{n}",
                   values={"body_temp_c": 38.5})


async def test_a_failed_commit_takes_the_turns_queued_after_it_along_and_both_come_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = threading.Event()  # the first alert's commit on the journal thread, held
    refused: list[list[Any]] = []
    commit = Journal._commit_sync

    def first_fails(journal: Journal, group: Any, lazy: Any) -> Any:
        records = [r for job in group for r in job.records]
        if not refused and any(isinstance(r, Alert) for r in records):
            refused.append(records)
            held.wait(10)
            raise sqlite3.OperationalError("disk I/O error")  # not to be made on demand
        return commit(journal, group, lazy)

    monkeypatch.setattr(Journal, "_commit_sync", first_fails)
    seen: list[Alert] = []
    telemetry = TelemetryBuffer(10, Counters())
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            telemetry, ManualClock(T0 + 5), seen.append, Counters())
        await runner.restore()
        task = asyncio.create_task(_restarted(runner), name="test.rules")
        try:
            telemetry.push(_fever(1))
            await eventually(lambda: bool(refused), what="the first alert's commit held")
            telemetry.push(_fever(2))
            await eventually(lambda: runner.commits_under_way == 2,
                             what="the next turn's commit queued behind it")
            assert seen == []  # nothing counts before its commit landed
            held.set()
            await eventually(lambda: len(seen) == 2, what="both alerts, committed again")
            await runner.caught_up()
        finally:
            held.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        records = await _records(journal)
    alerts = [r for r in records if isinstance(r, Alert)]
    assert [(a.device, a.rule, a.state) for a in alerts] == [
        ("gate-1", "temp_gate.fever", AlertState.FIRING),
        ("gate-2", "temp_gate.fever", AlertState.FIRING)]
    assert [a.id for a in refused[0] if isinstance(a, Alert)] == [alerts[0].id]
    assert len(refused) == 1  # the second was refused by the journal, not the disk
    assert [a.id for a in seen] == [a.id for a in alerts]
    assert len(telemetry) == 0  # each reading taken once its alert was committed
