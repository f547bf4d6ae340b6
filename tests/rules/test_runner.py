"""The engine under the RuleRunner: transitions, intents, cursor and state commit together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind, Notify, Reading, Record
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal, NotJournalledError
from rules.directory import directory_from_config
from rules.engine import RuleEngine
from rules.runner import RuleRunner
from tests.helpers import elder_gpio, eventually, make_config, refuse_commits
from tests.rules.sim import CONTACTS, DIRECTORY, T0, default_pack


async def test_engine_runs_under_the_existing_runner(tmp_path: Path) -> None:
    seen: list[Alert] = []
    clock = ManualClock(T0)
    async with Journal(tmp_path / "journal.db") as journal:
        engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        runner = RuleRunner(journal, engine, TelemetryBuffer(10, Counters()), clock,
                            seen.append, Counters())
        await runner.restore()
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            await journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", T0))
            await runner.caught_up()
            assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]
            # the escalation's timer runs on the injected clock: not a second early
            await eventually(lambda: clock.deadlines() == [120.0], what="the runner asleep")
            clock.advance(119)
            await runner.caught_up()
            assert await _groups(journal) == ["family"]
            clock.advance(1)
            await eventually(lambda: journal.last_seq == 4, what="the duty office step")
            await runner.caught_up()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        steps = [r for r in await _records(journal) if isinstance(r, Notify)]
        assert [(n.group, n.ts) for n in steps] == [("family", T0),
                                                    ("duty_office", T0 + 120_000)]

    async with Journal(tmp_path / "journal.db") as journal:
        again = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        await RuleRunner(journal, again, TelemetryBuffer(10, Counters()), ManualClock(T0),
                         seen.append, Counters()).restore()
        assert again.active() == engine.active()
        # the family step was journalled with the transition: nothing waits in the state
        assert again.take_notifications() == []
        assert await _groups(journal) == ["family", "duty_office"]


@pytest.mark.parametrize("event", [(DeviceKind.MANHOLE, "manhole-1", "online"),
                                   (DeviceKind.ELDER_BUTTON, "elder-1", "press")])
async def test_a_reading_keeps_its_own_time_when_an_event_shares_its_turn(
    tmp_path: Path, event: tuple[DeviceKind, str, str]
) -> None:
    """A `for` timer runs from the reading's time, even when an event journalled a few
    milliseconds later is evaluated in the same turn; an alarm too, though its turn takes
    only the readings from before it."""
    seen: list[Alert] = []
    clock = ManualClock(T0 + 5)
    telemetry = TelemetryBuffer(10, Counters())
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            telemetry, clock, seen.append, Counters())
        await runner.restore()
        telemetry.push(Reading(id="r1", ts=T0, kind=DeviceKind.MANHOLE, device="manhole-1",
                               values={"tilt_deg": 35.0}))
        await journal.append(make_event(*event, T0 + 5))
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            await runner.caught_up()
            await eventually(lambda: bool(clock.deadlines()), what="the runner asleep")
            clock.advance(2.994)  # T0 + 2999: the tilt has not lasted 3 s yet
            await runner.caught_up()
            assert [a for a in seen if a.rule == "manhole.tilt"] == []
            clock.advance(0.006)
            await eventually(lambda: any(a.rule == "manhole.tilt" for a in seen),
                             what="the tilt alert")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    tilt = next(a for a in seen if a.rule == "manhole.tilt")
    assert tilt.state is AlertState.FIRING
    assert tilt.since == tilt.ts == T0 + 3000


async def test_a_timer_a_door_armed_waits_for_a_commit_while_readings_flow(
    tmp_path: Path,
) -> None:
    """A door opened arms the held-open timer: the journal can evaluate it again, so it
    costs no fsync of its own, even when readings share its turn; a timer a reading armed
    (a tilt that must last 3 s) cannot be replayed and is committed with an fsync."""
    clock = ManualClock(T0 + 5)
    telemetry = TelemetryBuffer(10, Counters())
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            telemetry, clock, lambda alert: None, Counters())
        await runner.restore()
        await runner.save()  # the rules' index, written once
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            await runner.caught_up()
            fsynced = journal.commits
            telemetry.push(Reading(id="r1", ts=T0, kind=DeviceKind.MANHOLE, device="manhole-1",
                                   values={"tilt_deg": 1.0}))
            await journal.append(make_event(DeviceKind.ACCESS, "door-1", "door_opened", T0 + 1))
            telemetry.push(Reading(id="r2", ts=T0 + 2, kind=DeviceKind.MANHOLE,
                                   device="manhole-1", values={"tilt_deg": 1.0}))
            await runner.caught_up()
            await eventually(lambda: bool(clock.deadlines()), what="the runner asleep")
            assert journal.commits == fsynced  # the event's own commit had none either
            telemetry.push(Reading(id="r3", ts=T0 + 3, kind=DeviceKind.MANHOLE,
                                   device="manhole-1", values={"tilt_deg": 35.0}))
            await eventually(lambda: journal.commits == fsynced + 1, what="the tilt's timer")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [k for k in await journal.read_states("rules.slot") if "held_open" in k] != []


async def _records(journal: Journal) -> list[Record]:
    return [e.record for e in (await journal.read_after(0, 100)).entries]


async def _groups(journal: Journal) -> list[str]:
    return [r.group for r in await _records(journal) if isinstance(r, Notify)]


def test_directory_from_the_gateway_configuration(tmp_path: Path) -> None:
    config = make_config(tmp_path, site="r1", devices=[elder_gpio("e1", pin=17)])
    directory = directory_from_config(config)
    assert directory["e1"].kind is DeviceKind.ELDER_BUTTON
    assert directory["e1"].location.label() == "building 3, unit 1, floor 5"


def test_state_from_an_unknown_version_is_refused() -> None:
    engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
    with pytest.raises(ValueError, match="rule state version 99"):
        engine.restore(b'{"v": 99}')


@pytest.mark.parametrize("cause", ["press", "fever"])
async def test_an_alert_whose_commit_failed_comes_again_once_the_journal_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cause: str
) -> None:
    """The disk refuses the commit of an alert once (an I/O error: the real fault cannot be
    made on demand). The rules task fails and is started again, as the gateway's
    supervisor does; the alert is then committed, from the press in the journal or the
    reading still in the telemetry buffer: the state the failed commit held is not kept."""
    seen: list[Alert] = []
    clock = ManualClock(T0 + 5)
    telemetry = TelemetryBuffer(10, Counters())
    refused = refuse_commits(monkeypatch, 1,
                             lambda records: any(isinstance(r, Alert) for r in records))
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            telemetry, clock, seen.append, Counters())
        await runner.restore()
        if cause == "press":
            await runner.save()  # rows saved before: the failed commit's are newer
        task = asyncio.create_task(_restarted(runner), name="test.rules")
        try:
            if cause == "press":
                await journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press",
                                                T0))
            else:  # before any rule state was saved: the rows fall back to none at all
                telemetry.push(Reading(id="r1", ts=T0, kind=DeviceKind.TEMP_GATE,
                                       device="gate-1", values={"body_temp_c": 38.5}))
            await eventually(lambda: bool(seen), what="the alert after the failed commit")
            await runner.caught_up()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        records = await _records(journal)
    alerts = [r for r in records if isinstance(r, Alert)]
    # the same alert, refused once
    assert [r.id for r in refused[0] if isinstance(r, Alert)] == [a.id for a in alerts]
    assert len(refused) == 1
    rule = "elder.sos" if cause == "press" else "temp_gate.fever"
    assert [(a.rule, a.state) for a in alerts] == [(rule, AlertState.FIRING)]
    assert [a.id for a in seen] == [a.id for a in alerts]
    # the first step of the alert's escalation, once
    steps = [(n.group, n.alert_id) for n in records if isinstance(n, Notify)]
    assert steps == [("family" if cause == "press" else "duty_office", alerts[0].id)]
    assert len(telemetry) == 0  # the reading taken once its alert was committed


async def _restarted(runner: RuleRunner) -> None:
    """The rules task as the supervisor keeps it: started again after a failure."""
    while True:
        try:
            await runner.run()
        except NotJournalledError:
            continue


async def test_a_stop_after_a_failed_commit_saves_nothing_of_what_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while it waits to start again after a refused commit, the rules save no
    state: the alert the refused commit held is not in the journal, and a state that said
    it was firing would keep it from being raised at the next start."""
    refused = refuse_commits(monkeypatch, 1,
                             lambda records: any(isinstance(r, Alert) for r in records))
    async with Journal(tmp_path / "journal.db") as journal:
        runner = RuleRunner(journal, RuleEngine(default_pack(), DIRECTORY, CONTACTS),
                            TelemetryBuffer(10, Counters()), ManualClock(T0 + 5),
                            lambda alert: None, Counters())
        await runner.restore()
        await journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", T0))
        with pytest.raises(NotJournalledError):
            await runner.run()
        assert len(refused) == 1
        await runner.save()
    async with Journal(tmp_path / "journal.db") as journal:
        again = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        seen: list[Alert] = []
        runner = RuleRunner(journal, again, TelemetryBuffer(10, Counters()),
                            ManualClock(T0 + 5), seen.append, Counters())
        await runner.restore()
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            await eventually(lambda: bool(seen), what="the SOS raised at the next start")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]
