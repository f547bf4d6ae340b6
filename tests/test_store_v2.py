"""The store sink's InfluxDB v2 write API (the default) against a real VictoriaMetrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.core.clock import SystemClock
from gateway.core.config import Location, StoreConfig
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind, Severity
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from gateway.ops.private_servers import VictoriaMetrics, free_port
from gateway.ops.store_query import Series, export
from gateway.sinks.points import PointMaker
from gateway.sinks.store_sink import StoreSink
from gateway.sinks.store_writer import InfluxWriter, StoreWriteError, writer_for
from tests.helpers import eventually, unique_site
from tests.http_server import serving

TOKEN_ENV = "SCGW_STORE_TOKEN"
# VictoriaMetrics refuses (400) a line longer than 256 KiB, its -influx.maxLineSize
TOO_LONG = 300_000


def _config(url: str, **extra: object) -> StoreConfig:
    return StoreConfig.model_validate({
        "url": url, "token_env": TOKEN_ENV, "flush_interval_s": 0.05, "timeout_s": 2.0,
        "retry_min_s": 0.01, "retry_max_s": 0.05, **extra})


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with Journal(tmp_path / "j.db") as journal:
        yield journal


async def _series(store: VictoriaMetrics, site: str, count: int) -> list[Series]:
    found: list[Series] = []

    async def stored() -> bool:
        found[:] = await asyncio.to_thread(export, store.url, f'{{site="{site}"}}')
        return len(found) >= count

    await eventually(stored, what=f"{count} series of site {site} in VictoriaMetrics")
    return sorted(found, key=lambda s: s.labels["__name__"])


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_events_and_alerts_written_with_a_token_land_with_their_tags(
    victoria: VictoriaMetrics, journal: Journal
) -> None:
    site = unique_site("v2")
    counters = Counters()
    config = _config(victoria.url)
    writer = writer_for(config, {TOKEN_ENV: "s3cret-token"})
    assert isinstance(writer, InfluxWriter)
    sink = StoreSink(config, writer, PointMaker(site, lambda d: Location(building="3", floor=2)),
                     journal, TelemetryBuffer(100, counters), SystemClock(), counters)
    now = time.time_ns() // 1_000_000
    task = asyncio.create_task(sink.run())
    try:
        await journal.commit([
            make_event(DeviceKind.SMOKE, "smoke-3-1", "alarm", now),
            Alert(id="a-1", rule="smoke-alarm", device="smoke-3-1", kind=DeviceKind.SMOKE,
                  state=AlertState.FIRING, severity=Severity.CRITICAL, since=now, ts=now + 5,
                  value=1, message="smoke in building 3"),
        ])
        await eventually(lambda: sink.cursor == 2, what="both records confirmed")
    finally:
        await _stop(task)
    series = {s.labels["__name__"]: s for s in await _series(victoria, site, 4)}
    event = series["sc_event_count"]
    assert (event.labels["device"], event.labels["type"], event.labels["building"],
            event.labels["floor"]) == ("smoke-3-1", "alarm", "3", "2")
    assert (event.values, event.timestamps) == ([1], [now])  # millisecond precision
    alert = series["sc_alert_state_code"]
    assert alert.labels["rule"] == "smoke-alarm"
    assert "state" not in alert.labels
    assert "alert" not in alert.labels
    assert (alert.values, alert.timestamps) == ([1], [now + 5])
    assert series["sc_alert_since"].values == [now]
    assert counters.get("store_points_written") == 2


async def test_a_batch_the_store_refuses_is_not_retried_and_the_next_one_lands(
    victoria: VictoriaMetrics, journal: Journal
) -> None:
    site = unique_site("v2")
    now = time.time_ns() // 1_000_000
    writer = writer_for(_config(victoria.url), {TOKEN_ENV: "t"})
    try:
        with pytest.raises(StoreWriteError) as caught:
            await writer.write([f"sc_x,site={site},device={'d' * TOO_LONG} v=1 {now}"])
        await writer.write([f"sc_x,site={site},device=d1 v=2 {now}"])
    finally:
        await writer.close()
    assert caught.value.status == 400
    assert not caught.value.retryable
    assert "too long" in str(caught.value)  # the store's own reason
    [stored] = await _series(victoria, site, 1)
    assert (stored.labels["device"], stored.values) == ("d1", [2])


async def test_the_sink_counts_a_refused_batch_and_moves_past_it(
    victoria: VictoriaMetrics, journal: Journal
) -> None:
    site = unique_site("v2")
    counters = Counters()
    config = _config(victoria.url)
    sink = StoreSink(config, writer_for(config, {}), PointMaker(site, lambda d: None), journal,
                     TelemetryBuffer(100, counters), SystemClock(), counters)
    now = time.time_ns() // 1_000_000
    task = asyncio.create_task(sink.run())
    try:
        await journal.append(make_event(DeviceKind.SMOKE, "s" * TOO_LONG, "alarm", now))
        await eventually(lambda: sink.cursor == 1, what="the refused batch passed")
        await journal.append(make_event(DeviceKind.SMOKE, "s1", "alarm", now + 1))
        await eventually(lambda: sink.cursor == 2, what="the next batch written")
    finally:
        await _stop(task)
    assert counters.get("store_rejected", status="400") == 1
    assert counters.get("store_retries") == 0
    assert counters.get("store_points_written") == 1
    [stored] = await _series(victoria, site, 1)
    assert (stored.labels["device"], stored.timestamps) == ("s1", [now + 1])


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], str | None, str]] = []

    async def write(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query),
                              request.headers.get("Authorization"), await request.text()))
        return web.Response(status=204)


@pytest.mark.parametrize(("env", "authorization"), [
    ({TOKEN_ENV: "s3cret-token"}, "Token s3cret-token"),
    ({}, None),  # a store without authentication: no header at all
])
async def test_the_token_org_and_bucket_go_with_every_write(
    env: dict[str, str], authorization: str | None
) -> None:
    # VictoriaMetrics takes any token: what is sent is seen at a recording server
    port = free_port()
    recorder = _Recorder()
    writer = writer_for(_config(f"http://127.0.0.1:{port}/", org="estate", bucket="c1"), env)
    async with serving(port, "/api/v2/write", recorder.write):
        try:
            await writer.write(["m v=1 1", "m v=2 2"])
            await writer.write(["m v=3 3"])
        finally:
            await writer.close()
    query = {"org": "estate", "bucket": "c1", "precision": "ms"}
    assert recorder.requests == [("/api/v2/write", query, authorization, "m v=1 1\nm v=2 2"),
                                 ("/api/v2/write", query, authorization, "m v=3 3")]
    assert writer.connections == 1
