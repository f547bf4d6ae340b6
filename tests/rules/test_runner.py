"""The engine under the RuleRunner: transitions, intents, cursor and state commit together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.counters import Counters
from gateway.journal import Journal
from gateway.kinds import make_event
from gateway.model import Alert, AlertState, DeviceKind, Notify
from gateway.telemetry import TelemetryBuffer
from rules.directory import directory_from_config
from rules.engine import RuleEngine
from rules.runner import RuleRunner
from rules.seam import RuleSet, TimedRuleSet
from tests.helpers import elder_gpio, make_config
from tests.rules.sim import CONTACTS, DIRECTORY, T0, default_pack


async def test_engine_runs_under_the_existing_runner(tmp_path: Path) -> None:
    seen: list[Alert] = []
    async with Journal(tmp_path / "journal.db") as journal:
        engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        as_rules: RuleSet = engine
        as_timed: TimedRuleSet = engine
        assert as_rules is as_timed
        runner = RuleRunner(journal, engine, TelemetryBuffer(10, Counters()), ManualClock(T0),
                            seen.append, Counters())
        await runner.restore()
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            await journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", T0))
            await runner.caught_up()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [(a.rule, a.state) for a in seen] == [("elder.sos", AlertState.FIRING)]

    async with Journal(tmp_path / "journal.db") as journal:
        again = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        await RuleRunner(journal, again, TelemetryBuffer(10, Counters()), ManualClock(T0),
                         seen.append, Counters()).restore()
        assert again.active() == engine.active()
        # the family step was journalled with the transition: nothing waits in the state
        assert again.take_notifications() == []
        records = [e.record for e in (await journal.read_after(0, 10)).entries]
        assert [n.group for n in records if isinstance(n, Notify)] == ["family"]


def test_directory_from_the_gateway_configuration(tmp_path: Path) -> None:
    config = make_config(tmp_path, site="r1", devices=[elder_gpio("e1", pin=17)])
    directory = directory_from_config(config)
    assert directory["e1"].kind is DeviceKind.ELDER_BUTTON
    assert directory["e1"].location.label() == "building 3, unit 1, floor 5"


def test_state_from_an_unknown_version_is_refused() -> None:
    engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
    with pytest.raises(ValueError, match="rule state version 99"):
        engine.restore(b'{"v": 99}')
