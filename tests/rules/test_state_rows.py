"""The rule state saved per changed slot: telemetry-only changes are lazy, alarms durable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind, Reading
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from rules.engine import RuleEngine
from rules.runner import LAZY_SAVE_S, RuleRunner
from rules.state_rows import INDEX, LEGACY, META, PREFIX, slot_key
from tests.helpers import eventually
from tests.rules.sim import CONTACTS, DIRECTORY, T0, Sim, default_pack, ms

HEAT = "smoke.heat_rise"


def test_a_rate_sample_alone_is_a_lazy_change_of_its_own_slot() -> None:
    sim = Sim(default_pack())
    sim.reading("smoke-3-1", 0, temperature_c=22.0)
    sim.engine.state_changes()  # the first save: everything
    sim.reading("smoke-3-1", 5, temperature_c=22.1)
    changes = sim.engine.state_changes()
    assert changes.durable == {}
    assert set(changes.lazy) == {slot_key(HEAT, "smoke-3-1"), META}  # the sample, the clock
    assert sim.engine.state_changes().lazy == {}  # nothing changed since


def test_an_alarm_writes_its_own_slots_durably_and_nothing_else() -> None:
    sim = Sim(default_pack())
    for device in ("smoke-3-1", "smoke-3-2", "smoke-5-1"):
        sim.reading(device, 0, temperature_c=22.0)
    sim.engine.state_changes()
    sim.event("smoke-3-2", "alarm", 10)
    changes = sim.engine.state_changes()
    assert [(a.rule, a.state) for a in sim.alerts] == [("smoke.alarm", AlertState.FIRING)]
    assert set(changes.durable) == {slot_key("smoke.alarm", "smoke-3-2"),
                                    slot_key("smoke.fire_confirmed", "building-3"), META}
    assert not any("smoke-3-1" in row or "smoke-5-1" in row for row in changes.lazy)


def test_a_slot_that_empties_is_deleted() -> None:
    sim = Sim(default_pack())
    sim.event("elder-1", "press", 0)
    assert slot_key("elder.sos", "elder-1") in sim.engine.state_changes().durable
    sim.event("elder-1", "cancel", 5)
    changes = sim.engine.state_changes()
    assert changes.durable[slot_key("elder.sos", "elder-1")] is None


def test_the_rows_restore_the_same_engine() -> None:
    sim = Sim(default_pack())
    sim.reading("smoke-3-1", 0, temperature_c=22.0)
    sim.event("elder-1", "press", 1)
    sim.event("manhole-1", "open", 2)
    rows: dict[str, bytes] = {}
    changes = sim.engine.state_changes()
    for row, value in {**changes.lazy, **changes.durable}.items():
        assert value is not None
        rows[row] = value
    again = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
    again.restore_rows(rows)
    assert again.active() == sim.engine.active()
    assert again.snapshot() == sim.engine.snapshot()
    # restored rows are known as saved: nothing to write again
    assert not again.state_changes()


def test_rows_that_kept_the_index_in_the_meta_row_restore_and_are_split_once() -> None:
    sim = Sim(default_pack())
    sim.event("elder-1", "press", 1)
    changes = sim.engine.state_changes()
    rows = {row: value for row, value in {**changes.lazy, **changes.durable}.items()
            if value is not None}
    # as gateways before the index row saved them: the index inside the meta row
    meta = msgspec.json.decode(rows.pop(META))
    meta["rules"] = msgspec.json.decode(rows.pop(INDEX))
    assert meta["rules"]
    rows[META] = msgspec.json.encode(meta)
    again = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
    again.restore_rows(rows)
    assert again.active() == sim.engine.active()
    split = again.state_changes()
    assert set(split.durable) == {META, INDEX}
    assert not msgspec.json.decode(split.durable[META] or b"{}").get("rules")
    # an alert later writes the meta row (its count of fires), not the index again
    fired = again.on_event(make_event(DeviceKind.ELDER_BUTTON, "elder-2", "press", ms(2)))
    assert [a.state for a in fired] == [AlertState.FIRING]
    later = again.state_changes()
    assert META in later.durable
    assert INDEX not in later.durable


@dataclass
class Rig:
    journal: Journal
    engine: RuleEngine
    runner: RuleRunner
    telemetry: TelemetryBuffer
    clock: ManualClock
    alerts: list[Alert]


@asynccontextmanager
async def rig(path: Path) -> AsyncIterator[Rig]:
    alerts: list[Alert] = []
    clock = ManualClock(T0)
    async with Journal(path) as journal:
        engine = RuleEngine(default_pack(), DIRECTORY, CONTACTS)
        telemetry = TelemetryBuffer(1000, Counters())
        runner = RuleRunner(journal, engine, telemetry, clock, alerts.append, Counters())
        await runner.restore()
        task = asyncio.create_task(runner.run(), name="test.rules")
        try:
            yield Rig(journal, engine, runner, telemetry, clock, alerts)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _reading(n: int, device: str, at_s: float, temperature: float) -> Reading:
    return Reading(id=f"r{n}", ts=ms(at_s), kind=DeviceKind.SMOKE, device=device,
                   values={"temperature_c": temperature})


async def _feed(r: Rig, readings: list[Reading]) -> None:
    for reading in readings:
        r.telemetry.push(reading)
    await eventually(lambda: r.telemetry.pending("rules") == 0, what="readings evaluated")
    await r.runner.caught_up()


async def test_telemetry_that_changes_no_alert_costs_no_fsync(tmp_path: Path) -> None:
    async with rig(tmp_path / "journal.db") as r:
        row = slot_key(HEAT, "smoke-3-1")
        await _feed(r, [_reading(0, "smoke-3-1", 0, 22.0)])
        durable = r.journal.commits
        first = await r.journal.read_states(row)
        await _feed(r, [_reading(i, "smoke-3-1", i * 5, 22.0 + i / 100) for i in range(1, 40)])
        assert r.journal.commits == durable  # 39 rate samples: not one durable commit
        assert await r.journal.read_states(row) == first  # and not written yet either
        # written without an fsync once they waited LAZY_SAVE_S
        r.clock.advance(LAZY_SAVE_S)
        await _feed(r, [_reading(40, "smoke-3-1", 200, 22.4)])
        assert r.journal.commits == durable
        saved = await r.journal.read_states(row)
        assert b"22.4" in saved[row]


async def test_an_alarm_commits_its_own_rows_and_leaves_the_samples_waiting(
        tmp_path: Path) -> None:
    async with rig(tmp_path / "journal.db") as r:
        await _feed(r, [_reading(0, "smoke-3-1", 0, 22.0)])
        await _feed(r, [_reading(i, "smoke-3-1", i, 22.0 + i / 10) for i in range(1, 5)])
        durable = r.journal.commits
        await r.journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", ms(6)))
        await r.runner.caught_up()
        assert [(a.rule, a.state) for a in r.alerts] == [("elder.sos", AlertState.FIRING)]
        assert r.journal.commits == durable + 2  # the press; the transition with its slot
        rows = await r.journal.read_states(PREFIX)
        assert slot_key("elder.sos", "elder-1") in rows
        # the samples would make every alarm's commit as large as the compound: they wait
        assert slot_key(HEAT, "smoke-3-1") not in rows
        r.clock.advance(LAZY_SAVE_S)
        await _feed(r, [_reading(5, "smoke-3-1", 7, 22.5)])
        rows = await r.journal.read_states(PREFIX)
        assert b"22.5" in rows[slot_key(HEAT, "smoke-3-1")]


async def test_a_clean_stop_saves_the_lazy_rows_and_a_restart_resumes_from_them(
        tmp_path: Path) -> None:
    async with rig(tmp_path / "journal.db") as r:
        await _feed(r, [_reading(i, "smoke-3-1", i, 22.0) for i in range(3)])
        await r.runner.save()
        before = r.engine.snapshot()
    async with rig(tmp_path / "journal.db") as again:
        assert msgspec.json.decode(again.engine.snapshot()) == msgspec.json.decode(before)
        # a 10 °C jump within a minute from the restored sample: heat rise
        await _feed(again, [_reading(9, "smoke-3-1", 30, 32.0)])
        assert [(a.rule, a.state) for a in again.alerts] == [(HEAT, AlertState.FIRING)]


async def test_a_whole_state_saved_by_an_older_gateway_is_read_and_replaced_by_rows(
        tmp_path: Path) -> None:
    sim = Sim(default_pack())
    sim.event("elder-1", "press", 0)
    async with Journal(tmp_path / "journal.db") as journal:
        await journal.commit(state={LEGACY: sim.engine.snapshot()})
    async with rig(tmp_path / "journal.db") as r:
        assert [a.device for a in r.engine.active()] == ["elder-1"]
        await r.runner.save()
        rows = await r.journal.read_states(PREFIX)
        assert LEGACY not in rows
        assert META in rows
        assert slot_key("elder.sos", "elder-1") in rows


async def test_an_event_that_raises_nothing_waits_with_the_cursor_and_is_evaluated_again(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    opened = make_event(DeviceKind.ACCESS, "door-1", "door_opened", ms(1))
    async with rig(path) as r:
        await r.journal.append(opened)
        durable = r.journal.commits
        await r.runner.caught_up()
        # the door's timer is armed: rule state that needs no fsync of its own, because
        # the event that armed it is in the journal past the saved cursor
        assert r.engine.next_deadline() == ms(121)
        assert r.journal.commits == durable
        assert slot_key("access.held_open", "door-1") not in await r.journal.read_states(PREFIX)
        assert await r.journal.cursor("rules") == 0
        # the process dies here: nothing saved
    async with rig(path) as again:
        await again.runner.caught_up()
        assert again.engine.next_deadline() == ms(121)  # armed again by the replayed event
        await eventually(lambda: bool(again.clock.deadlines()), what="the runner's timer")
        again.clock.advance(130)
        await eventually(lambda: bool(again.alerts), what="the held-open alert")
        assert [(a.rule, a.device, a.state, a.since) for a in again.alerts] == [
            ("access.held_open", "door-1", AlertState.FIRING, ms(121))]
        # the alert, with the slot and the cursor, was committed durably
        rows = await again.journal.read_states(PREFIX)
        assert slot_key("access.held_open", "door-1") in rows
        assert await again.journal.cursor("rules") == 1


async def test_rows_that_wait_with_the_cursor_go_with_the_next_durable_commit(
        tmp_path: Path) -> None:
    async with rig(tmp_path / "journal.db") as r:
        await r.journal.append(make_event(DeviceKind.ACCESS, "door-1", "door_opened", ms(1)))
        await r.runner.caught_up()
        await r.journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", ms(2)))
        await r.runner.caught_up()
        assert [a.rule for a in r.alerts] == ["elder.sos"]
        # the press's commit moved the cursor past the door's event: its slot went with it
        rows = await r.journal.read_states(PREFIX)
        assert slot_key("access.held_open", "door-1") in rows
        assert slot_key("elder.sos", "elder-1") in rows
        assert await r.journal.cursor("rules") == 2
