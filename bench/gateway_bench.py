"""Benchmarks of a running gateway against a real Mosquitto and a real VictoriaMetrics.

The gateway runs in its own process (bench.host) with gpiozero's mock pins; the alert
subscriber runs here, the ingress publisher in a third process. All three read the same
system-wide monotonic clock, so a release stamped in the gateway process and an arrival
stamped here can be subtracted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import configs
from bench.alerts import AlertWatcher, watch_alerts
from bench.hostctl import REPO, BenchError, GatewayProcess, Release, Stats
from bench.report import Row
from bench.stats import Summary
from gateway.core.model import AlertState
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.ops.store_query import export

CANCEL_HOLD_S = configs.LONG_PRESS_S + 0.1

# counters that should stay at zero on a healthy run
TROUBLE = ("handler_errors", "task_restarts", "rule_errors", "mqtt_publish_failed",
           "mqtt_disconnects", "store_retries", "store_rejected")


@dataclass(frozen=True, slots=True)
class Sizes:
    presses: int = 200
    buttons: int = 10
    hold_s: float = 0.05
    gap_s: float = 0.05
    store_presses: int = 10
    ingress_messages: int = 20_000
    ingress_devices: int = 10
    event_messages: int = 2_000
    event_devices: int = 2
    qos: int = 0
    ingress_rate: float = 0.0  # messages/s the publisher holds; 0: as fast as it can
    idle_seconds: float = 10.0
    settle_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Servers:
    mosquitto: Mosquitto
    store: VictoriaMetrics


Progress = Callable[[str], None]


# -- servers ------------------------------------------------------------------------------


async def _start(start: Callable[[], None]) -> None:
    """Start a server in a thread; if we are cancelled meanwhile, let the start finish first
    so that the stop which follows finds the process and ends it."""
    starting = asyncio.ensure_future(asyncio.to_thread(start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await starting
        raise


@contextlib.asynccontextmanager
async def servers(workdir: Path) -> AsyncIterator[Servers]:
    # Nagle's algorithm off on its client sockets, as the installed broker has it
    mosquitto = Mosquitto(workdir / "mosquitto")
    store = VictoriaMetrics(workdir / "victoria-metrics")
    try:
        await _start(mosquitto.start)
        await _start(store.start)
        yield Servers(mosquitto, store)
    finally:
        try:
            await asyncio.to_thread(store.stop)
        finally:
            await asyncio.to_thread(mosquitto.stop)


# -- idle CPU ------------------------------------------------------------------------------


async def idle(srv: Servers, workdir: Path, sizes: Sizes, progress: Progress) -> list[Row]:
    """CPU time of a gateway with a few devices and nothing happening."""
    devices = [configs.button(0), configs.button(1), configs.smoke_sensor(0, heartbeat_s=30)]
    where = workdir / "gateway-idle"
    config = configs.gateway(configs.IDLE_SITE, where, srv.mosquitto.port, srv.store.url,
                             devices)
    progress(f"idle CPU: {len(devices)} devices, {sizes.idle_seconds:g} s")
    async with GatewayProcess("gateway-idle", config, where) as gw:
        await asyncio.sleep(sizes.settle_s)
        before = await gw.stats()
        await asyncio.sleep(sizes.idle_seconds)
        after = await gw.stats()
    return [_idle_row(f"{len(devices)} devices (2 GPIO buttons with LEDs, 1 MQTT sensor)",
                      before, after),
            _memory_row(f"idle, {len(devices)} devices", after)]


def _idle_row(case: str, before: Stats, after: Stats) -> Row:
    wall = after.mono - before.mono
    cpu = after.cpu_s - before.cpu_s
    switches = after.ctx_switches - before.ctx_switches
    return Row("idle CPU", f"{case}, {wall:.0f} s", f"{cpu / wall * 100:.2f} % of one core",
               f"{cpu:.3f} CPU-s in {wall:.1f} s; {switches / wall:.1f} context switches/s; "
               f"{after.threads} threads",
               {"cpu_s": cpu, "wall_s": wall, "cpu_percent": cpu / wall * 100,
                "context_switches_per_s": switches / wall, "threads": after.threads})


# -- the main gateway -----------------------------------------------------------------------


async def loaded(srv: Servers, workdir: Path, sizes: Sizes, want: set[str],
                 progress: Progress) -> list[Row]:
    """Idle CPU, latency, ingress and memory on one gateway with buttons and MQTT sensors."""
    buttons = [configs.button(i) for i in range(sizes.buttons)]
    smoke = [configs.smoke_sensor(i) for i in range(sizes.ingress_devices)]
    doors = [configs.door_sensor(i) for i in range(sizes.event_devices)]
    devices = buttons + smoke + doors
    where = workdir / "gateway"
    config = configs.gateway(configs.SITE, where, srv.mosquitto.port, srv.store.url, devices)
    ids = [str(b["id"]) for b in buttons]
    rows: list[Row] = []
    memory: list[Row] = []
    described = (f"{len(devices)} devices ({len(buttons)} GPIO buttons, "
                 f"{len(smoke) + len(doors)} MQTT sensors)")
    async with GatewayProcess("gateway", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, configs.SITE) as watcher:
        await asyncio.sleep(sizes.settle_s)
        quiet = await gw.stats()
        memory.append(_memory_row(f"idle, {described}", quiet))
        if "idle" in want:
            progress(f"idle CPU: {len(devices)} devices, {sizes.idle_seconds:g} s")
            await asyncio.sleep(sizes.idle_seconds)
            rows.append(_idle_row(described, quiet, await gw.stats()))
        if "latency" in want and ids and sizes.presses:
            progress(f"alarm latency: {sizes.presses} presses on {len(ids)} buttons")
            await _presses(gw, watcher, ids, len(ids), sizes)  # warm-up, not measured
            rows += await _alarm_latency(gw, watcher, ids, sizes)
            if sizes.store_presses:
                progress(f"store query latency: {sizes.store_presses} presses")
                rows.append(await _store_visible(gw, watcher, srv.store.url, ids, sizes))
            memory.append(_memory_row("after the latency runs", await gw.stats()))
        if "ingress" in want:
            if smoke and sizes.ingress_messages:
                progress(f"ingress: {sizes.ingress_messages} telemetry messages")
                rows.append(await _ingress(gw, srv, workdir, smoke, sizes.ingress_messages,
                                           sizes, "telemetry"))
            if doors and sizes.event_messages:
                progress(f"ingress: {sizes.event_messages} event messages")
                rows.append(await _ingress(gw, srv, workdir, doors, sizes.event_messages,
                                           sizes, "event"))
            memory.append(_memory_row("after the ingress runs (sinks drained)",
                                      await gw.stats()))
    if gw.final is not None:
        trouble = {k: v for k, v in gw.final.counters.items() if k in TROUBLE and v}
        if trouble:
            progress(f"warning: the gateway counted trouble during the runs: {trouble}; "
                     f"see {gw.log_path}")
        # VmHWM is updated lazily by the kernel; never report it below an RSS we saw
        peak = max([gw.final.hwm_kib, *(int(r.data["rss_kib"]) for r in memory)])
        memory.append(Row("memory", "gateway peak RSS during the runs (VmHWM)", _mib(peak),
                          f"{gw.final.threads} threads after a clean stop",
                          {"hwm_kib": peak}))
    return rows + memory


def _memory_row(case: str, stats: Stats) -> Row:
    return Row("memory", f"gateway RSS, {case}", _mib(stats.rss_kib),
               f"{stats.threads} threads; {stats.telemetry_buffered:,} readings buffered",
               {"rss_kib": stats.rss_kib, "threads": stats.threads,
                "telemetry_buffered": stats.telemetry_buffered})


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


# -- alarm latency --------------------------------------------------------------------------


@dataclass(slots=True)
class Latencies:
    mqtt: list[float]  # release -> firing alert received by the subscriber
    store: list[float]  # release -> store answered 2xx to the write holding the firing point


async def _presses(gw: GatewayProcess, watcher: AlertWatcher, ids: list[str], count: int,
                   sizes: Sizes,
                   on_release: Callable[[str, Release], Awaitable[None]] | None = None,
                   jitter_s: float = 0.0) -> Latencies:
    """`count` short presses, one at a time, round-robin over the buttons; each round ends
    with a long press on every button of the round, which cancels its alert (a second press
    while a button's alert is open would be suppressed). `jitter_s` adds a random wait
    before each press, so that presses do not fall into step with a periodic process.
    """
    out = Latencies([], [])
    done = 0
    while done < count:
        batch = ids[: min(len(ids), count - done)]
        for device in batch:
            # the sinks settle; also longer than the debounce
            await asyncio.sleep(sizes.gap_s + random.uniform(0, jitter_s))
            release = (await gw.press([device], sizes.hold_s))[device]
            if on_release is not None:
                await on_release(device, release)
            _, arrived = await watcher.wait(device, AlertState.FIRING, release.ms - 5)
            out.mqtt.append(arrived - release.mono)
            accepted = await gw.store_accepted(device, release.ms - 5)
            out.store.append(accepted - release.mono)
        done += len(batch)
        await asyncio.sleep(sizes.gap_s)
        cancels = await gw.press(batch, CANCEL_HOLD_S)
        for device in batch:
            await watcher.wait(device, AlertState.RESOLVED, cancels[device].ms - 5)
    return out


async def _alarm_latency(gw: GatewayProcess, watcher: AlertWatcher, ids: list[str],
                         sizes: Sizes) -> list[Row]:
    before = await gw.stats()
    measured = await _presses(gw, watcher, ids, sizes.presses, sizes)
    after = await gw.stats()
    bounces = after.counters["gpio_bounces"] - before.counters["gpio_bounces"]
    suppressed = after.suppressed - before.suppressed
    if bounces or suppressed:
        raise BenchError(f"presses went astray: {bounces} bounce(s), {suppressed} suppressed")
    how = f"{len(ids)} buttons, hold {sizes.hold_s * 1000:.0f} ms, one press at a time"
    mqtt = Summary.of_seconds(measured.mqtt)
    store = Summary.of_seconds(measured.store)
    return [
        Row("alarm latency",
            f"button release -> firing alert received on MQTT, {mqtt.count} presses",
            mqtt.text(),
            f"p50 / p95 / p99 / max; min {mqtt.min:.1f} ms, mean {mqtt.mean:.1f} ms; {how}",
            mqtt.as_dict()),
        Row("alarm latency",
            f"button release -> firing point accepted by VictoriaMetrics, {store.count} presses",
            store.text(),
            f"p50 / p95 / p99 / max; min {store.min:.1f} ms, mean {store.mean:.1f} ms; "
            "the store's 2xx to the gateway's write; same presses",
            store.as_dict()),
    ]


async def _store_visible(gw: GatewayProcess, watcher: AlertWatcher, store_url: str,
                         ids: list[str], sizes: Sizes) -> Row:
    """Release -> the point is returned by a query: adds the store's own indexing delay."""
    visible: list[float] = []
    polls: list[float] = []

    async def poll(device: str, release: Release) -> None:
        # the button's alerts, one series: the firing is the point stamped at the release
        match = f'sc_alert_state_code{{site="{configs.SITE}",device="{device}"}}'
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            started = time.monotonic()
            series = await asyncio.to_thread(export, store_url, match)
            now = time.monotonic()
            polls.append(now - started)
            if any(ts >= release.ms - 5 for s in series for ts in s.timestamps):
                visible.append(now - release.mono)
                return
            await asyncio.sleep(0.005)
        raise BenchError(f"the firing point of {device} was not queryable within 15 s")

    # the store makes new samples searchable on a timer of its own: random phase
    measured = await _presses(gw, watcher, ids, sizes.store_presses, sizes, poll, jitter_s=1.0)
    summary = Summary.of_seconds(visible)
    accepted = Summary.of_seconds(measured.store)
    poll_ms = Summary.of_seconds(polls).p50
    return Row(
        "alarm latency",
        f"button release -> firing point returned by a store query, {summary.count} presses",
        summary.text(),
        f"p50 / p95 / p99 / max; polled every ~{poll_ms + 5:.0f} ms with force_flush + "
        f"/api/v1/export; the same points were accepted (2xx) after p50 {accepted.p50:.1f} / "
        f"max {accepted.max:.1f} ms: the rest is the store's delay before a new sample is "
        "searchable",
        {**summary.as_dict(), "poll_p50_ms": poll_ms, "accepted_p50_ms": accepted.p50,
         "accepted_max_ms": accepted.max},
    )


# -- ingress --------------------------------------------------------------------------------


async def _ingress(gw: GatewayProcess, srv: Servers, workdir: Path,
                   devices: list[dict[str, Any]], count: int, sizes: Sizes, kind: str) -> Row:
    qos = sizes.qos
    before = await gw.stats()
    base = before.counters["ingress_messages"]
    topics = configs.topics(devices)
    log = workdir / f"publisher-{kind}.log"
    err = await asyncio.to_thread(log.open, "ab")
    try:
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.publisher", "--port", str(srv.mosquitto.port),
            "--topics", ",".join(topics), "--count", str(count), "--qos", str(qos),
            "--kind", kind, "--rate", str(sizes.ingress_rate), stdout=asyncio.subprocess.PIPE,
            stderr=err, cwd=REPO, start_new_session=True)
    finally:
        err.close()  # the publisher has its own copy
    out = asyncio.ensure_future(publisher.communicate())
    try:
        processed, last_change, last = 0, time.monotonic(), before
        deadline = time.monotonic() + 300
        while processed < count:
            await asyncio.sleep(0.05)
            last = await gw.stats()
            now_processed = last.counters["ingress_messages"] - base
            if now_processed != processed:
                processed, last_change = now_processed, last.mono
            if out.done() and last.mono - last_change > 3:
                break  # the publisher is done and nothing more arrives: messages were lost
            if time.monotonic() > deadline:
                raise BenchError(f"ingress of {count} messages did not finish in 300 s")
        stdout, _ = await asyncio.wait_for(out, 60)
    finally:
        if publisher.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                publisher.kill()
            await publisher.wait()
        out.cancel()  # done by now, unless we are leaving on an error
    if publisher.returncode != 0:
        raise BenchError(f"the publisher failed ({publisher.returncode}); see {log}")
    if processed == 0:
        raise BenchError(f"none of the {count} ingress messages reached the gateway")
    sent = json.loads(stdout)
    first = float(sent["first"])
    publish_s = max(float(sent["last"]) - first, 1e-6)
    ingest_s = max(last_change - first, 1e-6)
    rate = processed / ingest_s
    # now let the sinks deliver what the flood left them
    drained = last
    drain_deadline = time.monotonic() + 120
    while not drained.drained and time.monotonic() < drain_deadline:
        await asyncio.sleep(0.1)
        drained = await gw.stats()
    c0, c1 = before.counters, drained.counters
    dropped = {s: c1[f"dropped_{s}"] - c0[f"dropped_{s}"] for s in ("mqtt", "store")}
    rejected = c1["rejected"] - c0["rejected"]
    cpu = (last.cpu_s - before.cpu_s) / (last.mono - before.mono) * 100
    records = drained.journal_records - before.journal_records
    commits = drained.journal_commits - before.journal_commits
    what = ("telemetry (3 readings each)" if kind == "telemetry"
            else "an event + 1 reading each (journalled)")
    journal = (f"; journal {commits / records:.2f} commits/record" if records else "")
    drain = (f"sinks drained {drained.mono - last_change:.1f} s after the last message"
             if drained.drained else "sinks NOT drained after 120 s")
    return Row(
        "MQTT ingress",
        f"{count:,} msgs QoS {qos}, {what}, {len(topics)} devices",
        f"{rate:,.0f} messages/s",
        f"{processed:,} processed, {count - processed:,} lost before the gateway, {rejected} "
        f"rejected; publisher {count / publish_s:,.0f} msg/s; gateway CPU {cpu:.0f} % of a "
        f"core; telemetry dropped: {dropped['mqtt']:,} MQTT sink, {dropped['store']:,} store "
        f"sink; {drain}{journal}",
        {"sent": count, "processed": processed, "seconds": ingest_s, "messages_per_s": rate,
         "publisher_per_s": count / publish_s, "gateway_cpu_percent": cpu,
         "dropped_mqtt_sink": dropped["mqtt"], "dropped_store_sink": dropped["store"],
         "rejected": rejected, "drained": int(drained.drained),
         "journal_commits": commits, "journal_records": records},
    )
