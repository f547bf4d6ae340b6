"""An alarm's message journalled by the rules, in one commit with the alert it raises."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceEvent, DeviceKind, Reading, Record
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal, NotJournalledError
from rules.engine import RuleEngine
from rules.runner import CONSUMER, READINGS_BATCH_S, AlarmLaneClosedError, RuleRunner
from tests.helpers import eventually, refuse_commits
from tests.rules.sim import CONTACTS, DIRECTORY, T0, default_pack


async def _runner(journal: Journal, seen: list[Alert], engine: RuleEngine | None = None,
                  telemetry: TelemetryBuffer | None = None, clock: ManualClock | None = None
                  ) -> RuleRunner:
    runner = RuleRunner(
        journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS) if engine is None else engine,
        TelemetryBuffer(10, Counters()) if telemetry is None else telemetry,
        ManualClock(T0) if clock is None else clock, seen.append, Counters())
    await runner.restore()
    return runner


async def _started(runner: RuleRunner) -> asyncio.Task[None]:
    task = asyncio.create_task(runner.run(), name="test.rules")
    await eventually(lambda: runner.idle, what="the runner waiting")
    return task


@asynccontextmanager
async def _running(journal: Journal, seen: list[Alert],
                   telemetry: TelemetryBuffer | None = None, clock: ManualClock | None = None
                   ) -> AsyncIterator[RuleRunner]:
    runner = await _runner(journal, seen, telemetry=telemetry, clock=clock)
    task = await _started(runner)
    try:
        yield runner
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _press(device: str = "elder-1", ts: int = T0, kind: str = "press") -> DeviceEvent:
    return make_event(DeviceKind.ELDER_BUTTON, device, kind, ts)


async def _records(journal: Journal) -> list[Record]:
    return [e.record for e in (await journal.read_after(0, 100, stored=True)).entries]


async def test_an_alarm_and_its_alert_take_one_commit_and_the_cursor_passes_both(
        tmp_path: Path) -> None:
    seen: list[Alert] = []
    async with Journal(tmp_path / "journal.db") as journal, _running(journal, seen) as runner:
        before = journal.commits
        press = _press()
        seqs = await runner.alarm([press])
        assert journal.commits == before + 1  # one fsync for the event and its alert
        records = await _records(journal)
        assert records[0] == press
        assert seqs == [1]
        assert [(r.rule, r.state) for r in records[1:] if isinstance(r, Alert)] == [
            ("elder.sos", AlertState.FIRING)]
        assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]
        # the commit moved the rules past the alarm and what it made: not evaluated again
        assert await journal.cursor(CONSUMER) == journal.last_seq
        await runner.caught_up()
        assert len(seen) == 1


async def test_records_journalled_before_an_alarm_are_evaluated_before_it(
        tmp_path: Path) -> None:
    """A cancel journalled just before the next press (the press handed in before the
    rules took the cancel): the press must find the first alert resolved and raise a new
    one, not be taken for a repeat of the firing one."""
    seen: list[Alert] = []
    async with Journal(tmp_path / "journal.db") as journal, _running(journal, seen) as runner:
        await runner.alarm([_press(ts=T0)])
        await runner.caught_up()
        await journal.commit([_press(ts=T0 + 10, kind="cancel")])
        assert len(seen) == 1  # the rules have not evaluated the cancel yet
        await runner.alarm([_press(ts=T0 + 20)])
        await runner.caught_up()
        assert [(a.rule, a.state) for a in seen] == [
            ("elder.sos", AlertState.FIRING), ("elder.sos", AlertState.RESOLVED),
            ("elder.sos", AlertState.FIRING)]
        assert await journal.cursor(CONSUMER) == journal.last_seq


async def test_a_reading_from_before_an_alarm_is_evaluated_in_its_turn_at_its_own_time(
        tmp_path: Path) -> None:
    """A tilt read at T0 and a press at T0 + 5: the tilt's 3 s run from T0. Evaluated after
    the press, the reading would count at the engine's time then, T0 + 5."""
    seen: list[Alert] = []
    telemetry = TelemetryBuffer(10, Counters())
    clock = ManualClock(T0 + 5)
    async with Journal(tmp_path / "journal.db") as journal, \
            _running(journal, seen, telemetry, clock) as runner:
        # both before the runner's next turn: the alarm's turn takes the reading
        telemetry.push(Reading(id="r1", ts=T0, kind=DeviceKind.MANHOLE,
                               device="manhole-1", values={"tilt_deg": 35.0}))
        await runner.alarm([_press(ts=T0 + 5)])
        await runner.caught_up()
        await eventually(lambda: bool(clock.deadlines()), what="the runner asleep")
        clock.advance(2.995)  # T0 + 3000
        await eventually(lambda: any(a.rule == "manhole.tilt" for a in seen),
                         what="the tilt alert")
    assert next(a for a in seen if a.rule == "manhole.tilt").since == T0 + 3000


async def test_the_receipt_goes_with_the_message_not_its_alert(tmp_path: Path) -> None:
    seen: list[Alert] = []
    receipt = Receipt("panel-1/7", b"digest", T0)
    async with Journal(tmp_path / "journal.db") as journal, _running(journal, seen) as runner:
        await runner.alarm([_press()], receipt)
        assert journal.receipt("panel-1/7") == receipt
    async with Journal(tmp_path / "journal.db") as journal:
        assert journal.receipt("panel-1/7") == receipt  # on disk
    # on the event's row (pruned with it), not on the alert's
    rows = await asyncio.to_thread(_receipts_by_row, tmp_path / "journal.db")
    assert rows[0] == (1, "panel-1/7")
    assert len(rows) >= 2  # the alert, its notification
    assert {key for _, key in rows[1:]} == {None}


def _receipts_by_row(path: Path) -> list[tuple[int, str | None]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [(int(seq), key) for seq, key in
                db.execute("SELECT seq, receipt FROM records ORDER BY seq")]


async def test_alarms_are_refused_while_the_rules_do_not_run(tmp_path: Path) -> None:
    async with Journal(tmp_path / "journal.db") as journal:
        runner = await _runner(journal, [])
        with pytest.raises(AlarmLaneClosedError):
            await runner.alarm([_press()])
        assert journal.last_seq == 0


async def test_alarms_waiting_when_the_rules_stop_are_given_back(tmp_path: Path) -> None:
    seen: list[Alert] = []
    async with Journal(tmp_path / "journal.db") as journal:
        runner = await _runner(journal, seen)
        task = await _started(runner)
        async with journal.front_of_line():  # the rules cannot get to the front meanwhile
            waiting = asyncio.ensure_future(runner.alarm([_press()]))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        with pytest.raises(AlarmLaneClosedError):
            await waiting
        assert journal.last_seq == 0
        assert seen == []


async def test_a_refused_commit_fails_the_alarm_and_the_rules_go_back_to_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = refuse_commits(monkeypatch, 1, lambda records: bool(records))
    seen: list[Alert] = []
    async with Journal(tmp_path / "journal.db") as journal:
        runner = await _runner(journal, seen)
        task = await _started(runner)
        with pytest.raises(NotJournalledError):
            await runner.alarm([_press()])
        with pytest.raises(NotJournalledError):
            await task  # the task ends: it is restarted, and goes back to the journal
        assert len(refused) == 1
        assert journal.last_seq == 0
        assert seen == []
        with pytest.raises(AlarmLaneClosedError):  # until it runs again
            await runner.alarm([_press()])
        task = await _started(runner)
        try:
            await runner.alarm([_press()])  # given again by its source
            assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_an_alarm_the_rules_fail_on_is_handed_back_to_the_intake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a rule's error (those are counted and skipped) but the runner's own: the alarm
    goes back to the intake, which journals it alone; the rules go back to the journal."""
    async with Journal(tmp_path / "journal.db") as journal:
        engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        runner = await _runner(journal, [], engine)
        task = await _started(runner)

        def broken() -> list[Record]:
            raise RuntimeError("broken")

        monkeypatch.setattr(engine, "take_notifications", broken)
        with pytest.raises(AlarmLaneClosedError):
            await runner.alarm([_press()])
        with pytest.raises(RuntimeError):
            await task
        assert journal.last_seq == 0
        with pytest.raises(AlarmLaneClosedError):
            await runner.alarm([_press()])


async def test_readings_wait_while_an_alarm_is_on_its_way_and_the_alarm_does_not(
        tmp_path: Path) -> None:
    """With the way claimed, a turn over readings steps aside; the alarm's own turn goes
    on (taking only the readings from before it), and the readings are evaluated once the
    claim ends."""
    seen: list[Alert] = []
    clock = ManualClock(T0)
    telemetry = TelemetryBuffer(10, Counters())
    way = RightOfWay(call_later=clock.call_later)
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            telemetry, clock, seen.append, Counters(), right_of_way=way)
        await runner.restore()
        task = await _started(runner)
        try:
            claim = way.claim()
            telemetry.push(Reading(id="r1", ts=T0 + 50, kind=DeviceKind.TEMP_GATE,
                                   device="gate-1", values={"body_temp_c": 38.5}))
            # were it not held, the reading would be taken READINGS_BATCH_S after it came
            await asyncio.sleep(READINGS_BATCH_S * 5)
            assert runner.stats.evaluations == 0
            assert len(telemetry) == 1
            seqs = await runner.alarm([_press(ts=T0)], whole=True)
            assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]
            assert len(seqs) > 1  # the press and what it made: its alert among them
            assert seqs[-1] == journal.last_seq
            way.journalled(claim, seqs[-1])
            way.published(seqs[-1])
            await eventually(lambda: any(a.rule == "temp_gate.fever" for a in seen),
                             what="the fever evaluated once the way is clear")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
