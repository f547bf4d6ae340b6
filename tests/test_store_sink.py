"""The store sink against a scripted HTTP store: faults a real store will not show on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import msgspec
import pytest
from aiohttp import web

from gateway.core.clock import ManualClock, SystemClock
from gateway.core.config import Location, StoreConfig
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceKind,
    Reading,
    Scalar,
    Severity,
)
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from gateway.ops.private_servers import free_port
from gateway.sinks.points import PointMaker
from gateway.sinks.store_sink import StoreSink
from gateway.sinks.store_writer import InfluxWriter, writer_for
from tests.helpers import eventually
from tests.http_server import serving


class ScriptedStore:
    """Answers /api/v2/write with the next scripted status; 'hang' outlasts the timeout;
    'close' answers 204 and closes the connection, as a store that restarts after it."""

    def __init__(self, script: list[int | str], then: int = 204) -> None:
        self.script = script
        self.then = then
        self.bodies: list[str] = []
        self.port = free_port()

    async def write(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.text())
        step = self.script.pop(0) if self.script else self.then
        if step == "hang":
            await asyncio.sleep(1.0)  # the writer's timeout is 0.3 s
            step = 204
        if step == "close":
            return web.Response(status=204, headers={"Connection": "close"})
        assert isinstance(step, int)
        return web.Response(status=step, text="" if step == 204 else '{"message":"scripted"}')


@pytest.fixture
async def store_server() -> AsyncIterator[ScriptedStore]:
    store = ScriptedStore([])
    async with serving(store.port, "/api/v2/write", store.write):
        yield store


async def _sink(tmp_path: Path, store: ScriptedStore) -> tuple[StoreSink, Journal, Counters]:
    config = StoreConfig(url=f"http://127.0.0.1:{store.port}", flush_interval_s=0.05,
                         timeout_s=0.3, retry_min_s=0.01, retry_max_s=0.05)
    counters = Counters()
    journal = Journal(tmp_path / "j.db")
    await journal.open()
    points = PointMaker("c1", lambda device: Location(building="3"))
    sink = StoreSink(config, InfluxWriter(config, "token"), points, journal,
                     TelemetryBuffer(100, counters), SystemClock(), counters)
    return sink, journal, counters


async def test_failed_writes_are_retried_and_the_cursor_waits_for_2xx(
    tmp_path: Path, store_server: ScriptedStore
) -> None:
    store_server.script = [500, 429, "hang", 503]
    sink, journal, counters = await _sink(tmp_path, store_server)
    task = asyncio.create_task(sink.run())
    try:
        await journal.commit([make_event(DeviceKind.SMOKE, f"s{n}", "alarm", 1000 + n)
                              for n in range(3)])
        await eventually(lambda: len(store_server.bodies) >= 2, what="first retries")
        assert sink.cursor == 0  # nothing confirmed yet
        await eventually(lambda: sink.cursor == 3, what="cursor after the 2xx")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
    assert len(store_server.bodies) == 5
    first = store_server.bodies[0]
    assert all(body == first for body in store_server.bodies)  # the same batch, unchanged
    assert first.count("\n") == 2
    assert "sc_event," in first
    assert counters.get("store_retries", reason="500") == 1
    assert counters.get("store_retries", reason="429") == 1
    assert counters.get("store_retries", reason="unreachable") == 1  # the timeout
    assert counters.get("store_retries", reason="503") == 1
    assert counters.get("store_points_written") == 3


async def test_a_batch_the_store_refuses_is_counted_and_passed(
    tmp_path: Path, store_server: ScriptedStore
) -> None:
    store_server.script = [400]
    sink, journal, counters = await _sink(tmp_path, store_server)
    task = asyncio.create_task(sink.run())
    try:
        await journal.append(make_event(DeviceKind.SMOKE, "s1", "alarm", 1000))
        await eventually(lambda: sink.cursor == 1, what="refused batch passed")
        await journal.append(make_event(DeviceKind.SMOKE, "s1", "alarm", 2000))
        await eventually(lambda: sink.cursor == 2, what="next batch written")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
    assert counters.get("store_rejected", status="400") == 1
    assert counters.get("store_points_written") == 1


async def test_after_a_new_connection_the_window_before_is_written_again(
    tmp_path: Path, store_server: ScriptedStore
) -> None:
    config = StoreConfig(url=f"http://127.0.0.1:{store_server.port}", flush_interval_s=60,
                         retry_min_s=0.01, retry_max_s=0.05, replay_window_s=10)
    counters = Counters()
    clock = ManualClock()
    store_server.script = [204, "close", 204, 204, "close", 204]
    async with Journal(tmp_path / "j.db") as journal:
        sink = StoreSink(config, InfluxWriter(config, "t"), PointMaker("c1", lambda d: None),
                         journal, TelemetryBuffer(10, counters), clock, counters)
        task = asyncio.create_task(sink.run())

        async def written(device: str, bodies: int) -> None:
            await journal.append(make_event(DeviceKind.SMOKE, device, "alarm", 1000))
            await eventually(lambda: len(store_server.bodies) == bodies,
                             what=f"{device} written")

        try:
            await written("a", 1)
            clock.advance(11)
            await written("b", 2)  # then the store restarts, between two writes
            clock.advance(5)
            await written("c", 4)  # over a new connection: b (5 s before) goes again, a not
            clock.advance(6)  # b was first written 11 s ago, its replay 6 s ago
            await written("d", 5)  # then the store restarts again
            await written("e", 7)  # c, accepted 6 s before, goes again; b not
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def devices(body: str) -> list[str]:
        return [line.split("device=")[1].split(",")[0] for line in body.splitlines()]

    assert [devices(body) for body in store_server.bodies] == [
        ["a"], ["b"], ["c"], ["b"], ["d"], ["e"], ["c", "d"]]
    assert counters.get("store_replayed") == 3


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_a_writer_counts_the_connections_it_opens(api: Literal["v2", "v1"]) -> None:
    store = ScriptedStore(["close", 204, 204])
    config = StoreConfig(api=api, url=f"http://127.0.0.1:{store.port}")
    writer = writer_for(config, {})
    async with serving(store.port, "/api/v2/write" if api == "v2" else "/write", store.write):
        try:
            connections = []
            for _ in range(3):
                await writer.write(["m v=1 1"])
                connections.append(writer.connections)
        finally:
            await writer.close()
    assert connections == [1, 2, 2]  # the store closed the first connection


def test_points_are_deterministic_and_escaped() -> None:
    maker = PointMaker("c 1", lambda device: Location(building="3,A", unit="1", floor=5))
    event = make_event(DeviceKind.SMOKE, "smoke=1", "alarm", 1_700_000_000_123,
                       {"obscuration": 4.5, "battery_low": True, "label": "text"})
    assert event.cls is DeliveryClass.ALARM
    line = maker.line(event)
    assert line == (
        r"sc_event,building=3\,A,class=alarm,device=smoke\=1,floor=5,kind=smoke,site=c\ 1,"
        r"type=alarm,unit=1 battery_low=1.0,count=1i,obscuration=4.5 1700000000123"
    )
    assert maker.line(event) == line
    alert = Alert(id="a1", ts=5, rule="elder.sos", device="e1", kind=DeviceKind.ELDER_BUTTON,
                  state=AlertState.ACKNOWLEDGED, severity=Severity.CRITICAL, since=4, value=1)
    # one series per rule and key: neither the alert's id nor its state is a tag
    assert maker.line(alert) == (
        "sc_alert,building=3\\,A,device=e1,floor=5,kind=elder_button,rule=elder.sos,"
        "severity=critical,site=c\\ 1,unit=1 since=4i,state_code=2i,value=1.0 5"
    )
    # the key's next transition, without a numeric value: the same series, no `value`
    resolved = msgspec.structs.replace(alert, ts=6, state=AlertState.RESOLVED, value="x")
    assert maker.line(resolved) == (
        "sc_alert,building=3\\,A,device=e1,floor=5,kind=elder_button,rule=elder.sos,"
        "severity=critical,site=c\\ 1,unit=1 since=4i,state_code=3i 6"
    )


def test_reading_points_keep_their_escapes_and_float_fields_device_after_device() -> None:
    maker = PointMaker("c 1", lambda device: Location(building="3,A"))
    values: dict[str, Scalar] = {"temp c": 36.6, "a=b": 2, "mask": True, "label": "x",
                                 "nan": float("nan"), "inf": float("inf")}
    lines = [maker.line(Reading(id=f"r{n}", ts=n, kind=DeviceKind.TEMP_GATE,
                                device=f"gate {n % 2}", values=values)) for n in range(4)]
    assert lines[1] == (r"sc_temp_gate,building=3\,A,device=gate\ 1,kind=temp_gate,site=c\ 1 "
                        r"a\=b=2.0,mask=1.0,temp\ c=36.6 1")
    assert lines[1] is not None
    assert lines[3] == lines[1][:-1] + "3"
    assert lines[0] is not None
    assert lines[0].startswith(r"sc_temp_gate,building=3\,A,device=gate\ 0,")
    text_only = Reading(id="t", ts=9, kind=DeviceKind.TEMP_GATE, device="gate 0",
                        values={"label": "x"})
    assert maker.line(text_only) is None


def _sink_every_minute(store: ScriptedStore, journal: Journal, clock: ManualClock,
                       telemetry: TelemetryBuffer | None = None,
                       right_of_way: RightOfWay | None = None) -> StoreSink:
    """A sink whose batches wait 60 s of `clock` to fill."""
    config = StoreConfig(url=f"http://127.0.0.1:{store.port}", flush_interval_s=60,
                         retry_min_s=0.01, retry_max_s=0.05)
    counters = Counters()
    return StoreSink(config, InfluxWriter(config, "t"), PointMaker("c1", lambda d: None),
                     journal, TelemetryBuffer(10, counters) if telemetry is None else telemetry,
                     clock, counters, right_of_way=right_of_way)


async def test_an_alarm_cuts_the_batch_interval_short(
    tmp_path: Path, store_server: ScriptedStore
) -> None:
    clock = ManualClock()
    async with Journal(tmp_path / "j.db") as journal:
        sink = _sink_every_minute(store_server, journal, clock)
        task = asyncio.create_task(sink.run())
        try:
            await journal.append(make_event(DeviceKind.SMOKE, "s1", "low_battery", 1000))
            await eventually(lambda: clock.deadlines() == [60.0],
                             what="the sink waiting out its 60 s interval")
            clock.advance(59)
            await journal.append(make_event(DeviceKind.SMOKE, "s1", "alarm", 1001))
            await eventually(lambda: sink.cursor == 2, what="written without the interval")
            assert len(store_server.bodies) == 1
            # without an alarm, a batch waits for the whole interval, and then goes
            await journal.append(make_event(DeviceKind.SMOKE, "s1", "low_battery", 1002))
            await eventually(lambda: clock.deadlines() == [119.0],
                             what="the sink waiting out its next interval")
            assert len(store_server.bodies) == 1
            clock.advance(60)
            await eventually(lambda: sink.cursor == 3, what="written after the interval")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(store_server.bodies) == 2
    assert "type=low_battery" in store_server.bodies[0]
    assert "type=alarm" in store_server.bodies[0]
    assert "type=low_battery" in store_server.bodies[1]
    assert "type=alarm" not in store_server.bodies[1]


async def test_readings_wait_while_an_alarm_is_on_its_way_and_the_alarm_does_not(
    tmp_path: Path, store_server: ScriptedStore
) -> None:
    clock = ManualClock()
    telemetry = TelemetryBuffer(10, Counters())
    way = RightOfWay(call_later=ManualClock().call_later)  # a claim that never runs out

    def reading(n: int) -> Reading:
        return Reading(id=f"r{n}", ts=1000 + n, kind=DeviceKind.TEMP_GATE, device="gate-1",
                       values={"body_temp_c": 36.5})

    async with Journal(tmp_path / "j.db") as journal:
        sink = _sink_every_minute(store_server, journal, clock, telemetry, way)
        task = asyncio.create_task(sink.run())
        try:
            claim = way.claim()
            telemetry.push(reading(1))
            await eventually(lambda: clock.deadlines() == [60.0],
                             what="the sink waiting out its interval")
            clock.advance(60)
            await asyncio.sleep(0.3)  # the way clear, the reading would be written by now
            assert store_server.bodies == []
            # an alarm's batch goes at once, held or not (and takes the reading along)
            await journal.append(make_event(DeviceKind.SMOKE, "s1", "alarm", 1001))
            await eventually(lambda: len(store_server.bodies) == 1, what="the alarm written")
            telemetry.push(reading(2))
            await eventually(lambda: clock.deadlines() == [120.0],
                             what="the sink waiting out its next interval")
            clock.advance(60)
            await asyncio.sleep(0.3)
            assert len(store_server.bodies) == 1
            way.end(claim)
            await eventually(lambda: len(store_server.bodies) == 2,
                             what="the reading written once the way is clear")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert "type=alarm" in store_server.bodies[0]
    assert "gate-1" in store_server.bodies[0]
    assert "type=alarm" not in store_server.bodies[1]
    assert "gate-1" in store_server.bodies[1]
