"""The store sink's InfluxDB 1.x mode against a real Debian `influxd`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.clock import SystemClock
from gateway.core.config import Location, StoreConfig
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind, Severity
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from gateway.ops.private_servers import InfluxDB1
from gateway.sinks.points import ALERT_STATE_CODE, PointMaker
from gateway.sinks.store_sink import StoreSink
from gateway.sinks.store_writer import InfluxV1Writer, StoreWriteError, writer_for
from tests.helpers import eventually, unique_site
from tests.rules.sim import Sim, default_pack


def _config(store: InfluxDB1, database: str, **extra: Any) -> StoreConfig:
    return StoreConfig(api="v1", url=store.url, database=database, flush_interval_s=0.05,
                       timeout_s=2.0, retry_min_s=0.01, retry_max_s=0.05, **extra)


def _rows(store: InfluxDB1, influxql: str, database: str) -> list[list[Any]]:
    result = store.query(influxql, database)["results"][0]
    assert "error" not in result, result
    return [row for series in result.get("series", []) for row in series["values"]]


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = Journal(tmp_path / "j.db")
    await journal.open()
    yield journal
    await journal.close()


@pytest.fixture
def secured_influxdb1(tmp_path: Path) -> Iterator[InfluxDB1]:
    store = InfluxDB1(tmp_path / "influxd", admin=("scgw", "s3cret-pass"))
    store.start(timeout=30)
    yield store
    store.stop()


async def _running_sink(config: StoreConfig, journal: Journal, counters: Counters,
                        password: str = "") -> tuple[StoreSink, asyncio.Task[None]]:
    points = PointMaker("c1", lambda device: Location(building="3", floor=2))
    sink = StoreSink(config, InfluxV1Writer(config, password), points, journal,
                     TelemetryBuffer(100, counters), SystemClock(), counters)
    return sink, asyncio.create_task(sink.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_events_and_alerts_land_with_their_tags_and_fields(
    influxdb1: InfluxDB1, journal: Journal
) -> None:
    database = unique_site("v1")
    influxdb1.create_database(database)
    counters = Counters()
    sink, task = await _running_sink(_config(influxdb1, database), journal, counters)
    try:
        await journal.commit([
            make_event(DeviceKind.SMOKE, "smoke-3-1", "alarm", 1_700_000_000_000),
            Alert(id="a-1", rule="smoke-alarm", device="smoke-3-1", kind=DeviceKind.SMOKE,
                  state=AlertState.FIRING, severity=Severity.CRITICAL,
                  since=1_700_000_000_000, ts=1_700_000_000_005, value=1,
                  message="smoke in building 3"),
        ])
        await eventually(lambda: sink.cursor == 2, what="both records confirmed")
    finally:
        await _stop(task)
    assert _rows(influxdb1, 'SELECT "count", "device", "type", "building", "floor" '
                 'FROM "sc_event"', database) == [
        [1_700_000_000_000, 1, "smoke-3-1", "alarm", "3", "2"]]
    assert _rows(influxdb1, 'SELECT "state_code", "since", "severity", "rule" '
                 'FROM "sc_alert"', database) == [
        [1_700_000_000_005, 1, 1_700_000_000_000, "critical", "smoke-alarm"]]


async def test_alerts_of_one_key_share_one_series_and_keep_every_transition(
    influxdb1: InfluxDB1, journal: Journal
) -> None:
    database = unique_site("v1")
    influxdb1.create_database(database)
    sim = Sim(default_pack())
    for n in range(20):  # twenty presses and cancels, the last press in the same ms as all
        sim.event("elder-1", "press", n * 10)
        sim.event("elder-1", "cancel", n * 10 + 5)
    sim.event("elder-1", "press", 195)  # fired again in the cancel's millisecond
    sim.ack("elder.sos", "elder-1", 195)
    alerts = sim.alerts
    assert len(alerts) == 42
    assert len({a.ts for a in alerts}) == 42
    sink, task = await _running_sink(_config(influxdb1, database), journal, Counters())
    try:
        await journal.commit(alerts)
        await eventually(lambda: sink.cursor == len(alerts), what="every alert confirmed")
    finally:
        await _stop(task)
    # one series, however many alerts the key has had: no tag grows with them
    assert len(_rows(influxdb1, 'SHOW SERIES FROM "sc_alert"', database)) == 1
    rows = _rows(influxdb1, 'SELECT "state_code", "since" FROM "sc_alert"', database)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (a.ts, ALERT_STATE_CODE[a.state], a.since) for a in alerts]
    # an alert is told from the next by its `since`; the last one is acknowledged
    assert _rows(influxdb1, 'SELECT last("state_code"), "since" FROM "sc_alert"',
                 database)[0][1:] == [2, alerts[-1].since]


async def test_writing_a_batch_again_overwrites_instead_of_duplicating(
    influxdb1: InfluxDB1
) -> None:
    database = unique_site("v1")
    influxdb1.create_database(database)
    writer = InfluxV1Writer(_config(influxdb1, database), "")
    lines = [f"sc_temp_gate,device=gate-1,site=c1 temperature_c=36.{n} {1_700_000_000_000 + n}"
             for n in range(5)]
    try:
        await writer.write(lines)
        await writer.write(lines)  # a retry after a lost answer
    finally:
        await writer.close()
    assert _rows(influxdb1, 'SELECT count("temperature_c") FROM "sc_temp_gate"',
                 database)[0][1] == 5


async def test_a_missing_database_is_retried_until_it_exists(
    influxdb1: InfluxDB1, journal: Journal
) -> None:
    database = unique_site("v1")  # not created yet
    counters = Counters()
    sink, task = await _running_sink(_config(influxdb1, database), journal, counters)
    try:
        await journal.commit([make_event(DeviceKind.ELDER_BUTTON, "sos-1", "press",
                                        1_700_000_000_000)])
        await eventually(lambda: counters.get("store_retries", reason="404") >= 2, what="retries")
        assert sink.cursor == 0  # still held by the journal
        influxdb1.create_database(database)
        await eventually(lambda: sink.cursor == 1, what="written once the database exists")
    finally:
        await _stop(task)
    assert _rows(influxdb1, 'SELECT "count", "device" FROM "sc_event"', database) == [
        [1_700_000_000_000, 1, "sos-1"]]


async def test_a_missing_database_is_named_with_the_fix(influxdb1: InfluxDB1) -> None:
    writer = InfluxV1Writer(_config(influxdb1, "no_such_db"), "")
    try:
        with pytest.raises(StoreWriteError) as caught:
            await writer.write(["sc_x v=1 1"])
    finally:
        await writer.close()
    assert caught.value.status == 404
    assert caught.value.retryable
    assert "CREATE DATABASE" in str(caught.value)
    assert "no_such_db" in str(caught.value)


async def test_a_line_the_store_refuses_is_not_retried(influxdb1: InfluxDB1) -> None:
    database = unique_site("v1")
    influxdb1.create_database(database)
    writer = InfluxV1Writer(_config(influxdb1, database), "")
    try:
        await writer.write(["sc_x,device=a v=1 1700000000000"])
        with pytest.raises(StoreWriteError) as caught:  # a field that changes type
            await writer.write(['sc_x,device=a v="text" 1700000000001'])
    finally:
        await writer.close()
    assert caught.value.status == 400
    assert not caught.value.retryable


async def test_credentials_are_sent_and_a_wrong_password_is_retryable(
    secured_influxdb1: InfluxDB1, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = secured_influxdb1
    store.create_database("scgw")
    config = _config(store, "scgw", username="scgw", password_env="SCGW_STORE_PASSWORD")
    monkeypatch.setenv("SCGW_STORE_PASSWORD", "wrong")
    wrong = writer_for(config, {"SCGW_STORE_PASSWORD": "wrong"})
    right = writer_for(config, {"SCGW_STORE_PASSWORD": "s3cret-pass"})
    try:
        with pytest.raises(StoreWriteError) as caught:
            await wrong.write(["sc_x v=1 1700000000000"])
        await right.write(["sc_x v=2 1700000000000"])
    finally:
        await wrong.close()
        await right.close()
    assert caught.value.status == 401
    assert caught.value.retryable
    assert "store.password_env" in str(caught.value)
    assert _rows(store, 'SELECT "v" FROM "sc_x"', "scgw") == [[1_700_000_000_000, 2.0]]


def test_the_v2_writer_is_chosen_by_default(influxdb1: InfluxDB1) -> None:
    config = StoreConfig(url=influxdb1.url)
    assert not isinstance(writer_for(config, {}), InfluxV1Writer)
    assert isinstance(writer_for(config.model_copy(update={"api": "v1"}), {}), InfluxV1Writer)
