"""The pipeline benchmark: temperature gates -> MQTT -> fever rule -> alert on MQTT + store.

One step runs the open-loop gate publisher (bench.gates) at a fixed rate for a fixed time
against a system under test, with an independent listener (bench.listener) on its alert
topics. A step passes when every fever sent came back as an alert, the p99 of send ->
alert received is within the limit, every reading is in VictoriaMetrics shortly after the
last one was sent, and the system counted no drop. Steps go up in rate until one fails;
the highest passing rate is the system's sustained rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from bench.children import Child, python_module
from bench.gates import gate_id
from bench.hostctl import BenchError
from bench.procstat import sample
from bench.stats import Summary

Progress = Callable[[str], None]

P99_LIMIT_MS = 100.0  # a step passes with nothing lost and the alert p99 within this
TARGET_P99_MS = 50.0  # the targets' alert p99: the highest step within it is reported too
DRAIN_S = 5.0  # after the last reading, everything must be stored and alerted within this
LATE_S = 10.0  # how much longer to wait, to tell late from lost


@dataclass(frozen=True, slots=True)
class Alerted:
    """A new alert as a system under test published it."""

    gate: str
    value: float
    seq: int | None  # the reading's sequence number, when the alert carries it


class System(Protocol):
    """What the pipeline needs to know about a system under test."""

    name: str
    gate_prefix: str  # gates publish on {gate_prefix}/gate-NNN
    alert_filter: str  # where its alerts appear
    alert_marker: str  # text in the payload of a new alert (not of a resolution)
    points_selector: str  # one field of the readings, as stored (a series selector)

    @property
    def pid(self) -> int: ...

    def alerted(self, topic: str, payload: str) -> Alerted | None:
        """The new alert in a message on alert_filter; None for anything else."""

    async def losses(self) -> dict[str, int]:
        """What the system itself counted as dropped or rejected so far."""


@dataclass(frozen=True, slots=True)
class Load:
    port: int  # the broker
    store_url: str
    workdir: Path
    gates: int = 200
    seconds: float = 10.0
    fever_share: float = 0.02
    seed: int = 7
    qos: int = 0  # of the gates' publishes
    # the rig's servers on this machine, by name ("broker", "store"): their pids, asked at
    # each step (a store started again has a new one)
    servers: Callable[[], Mapping[str, int]] | None = None


@dataclass(slots=True)
class Step:
    system: str
    rate: float
    seconds: float
    qos: int = 0
    fever_share: float = 0.0
    sent: int = 0
    acked: int = 0  # QoS 1: the broker's PUBACKs the gates received
    achieved_per_s: float = 0.0
    publisher_max_lag_ms: float = 0.0
    fevers: int = 0
    alerts: int = 0
    lost_alerts: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    points: int = 0
    lost_points: int = 0
    store_rows_accepted: int = 0  # field values the store took in meanwhile (3 per reading)
    stored_after_s: float = math.nan  # last reading sent -> every point stored
    cpu_s: float = 0.0
    cpu_s_per_10k: float = 0.0
    cpu_percent: float = 0.0
    rss_peak_kib: int = 0
    # what the rest of the rig used meanwhile, in % of one core: the broker, the store,
    # the gates and the listener share the machine with the system under test
    rig_cpu_percent: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    passed: bool = False
    why: str = ""
    store_error: str = ""  # the store stopped answering during the step


def rows_inserted(store_url: str) -> int:
    """Field values VictoriaMetrics has taken in over the InfluxDB protocols so far."""
    with urllib.request.urlopen(f"{store_url}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('vm_rows_inserted_total{type="influx"}'):
                return int(float(line.split()[-1]))
    return 0


def count_points(store_url: str, selector: str, since_ms: int, attempts: int = 5) -> int:
    """Raw samples of `selector` stamped at or after `since_ms` (blocking).

    Read with /api/v1/export, which returns the raw samples, after a force_flush: a query
    through the rollup functions was seen to miss or double-count samples written in the
    last second or two. A store flooded with one write per reading (the stock Node-RED
    flow) may reset the query's connection: asked again, up to `attempts` times.
    """
    for attempt in range(attempts):
        try:
            return _count_points(store_url, selector, since_ms)
        except (ConnectionError, urllib.error.URLError):
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _count_points(store_url: str, selector: str, since_ms: int) -> int:
    urllib.request.urlopen(f"{store_url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": selector, "start": f"{since_ms / 1000:.3f}"})
    with urllib.request.urlopen(f"{store_url}/api/v1/export?{query}", timeout=60) as resp:
        body = resp.read()
    return sum(len(json.loads(line)["timestamps"]) for line in body.splitlines()
               if line.strip())


async def run_step(system: System, load: Load, rate: float, progress: Progress) -> Step:
    step = Step(system.name, rate, load.seconds, load.qos, load.fever_share)
    tag = f"{system.name}-{int(rate)}"
    fevers_file = load.workdir / f"fevers-{tag}.json"
    alerts_file = load.workdir / f"alerts-{tag}.json"
    listener = Child(f"listener-{tag}", python_module(
        "bench.listener", "--port", str(load.port), "--filter", system.alert_filter,
        "--out", str(alerts_file), "--client-id", f"bench-listener-{tag}",
        "--marker", system.alert_marker), load.workdir)
    gates = Child(f"gates-{tag}", python_module(
        "bench.gates", "--port", str(load.port), "--gates", str(load.gates),
        "--prefix", system.gate_prefix, "--rate", f"{rate:g}", "--seconds", f"{load.seconds:g}",
        "--fever-share", f"{load.fever_share:g}", "--seed", str(load.seed + int(rate)),
        "--client-id", f"bench-gates-{tag}", "--out", str(fevers_file),
        "--qos", str(load.qos)), load.workdir)
    losses0 = await system.losses()
    async with listener, gates:
        await listener.read_json(30)
        await gates.read_json(30)
        # this step's points: stamped from now on (what came before was stored before)
        since_ms = time.time_ns() // 1_000_000
        try:
            rows0 = await asyncio.to_thread(rows_inserted, load.store_url)
        except (ConnectionError, urllib.error.URLError) as exc:
            rows0 = 0  # the step runs and fails; the store is started again before the next
            step.store_error = str(exc)
        rig = {**(load.servers() if load.servers else {}), "listener": listener.pid}
        cpu0 = await asyncio.to_thread(sample, system.pid)
        rig0 = await asyncio.to_thread(_cpu_s, rig)
        await gates.send("go")
        sent = await gates.read_json(load.seconds * 3 + 60)
        step.sent = int(sent["sent"])
        step.fevers = int(sent["fevers"])
        step.acked = int(sent.get("acked", 0))
        step.achieved_per_s = float(sent["achieved_per_s"])
        step.publisher_max_lag_ms = float(sent["max_lag_s"]) * 1000
        last_sent = float(sent["last"])
        gates_cpu_s = float(sent.get("cpu_s", 0.0))
        # everything stored and alerted within DRAIN_S of the last reading, or it fell
        # behind; waiting a while longer tells late from lost
        while True:
            try:
                points = await asyncio.to_thread(count_points, load.store_url,
                                                 system.points_selector, since_ms)
            except (ConnectionError, urllib.error.URLError) as exc:
                # a system that floods the store can take it down (the stock Node-RED
                # flow held one connection per write open until it ran out of files):
                # the step fails, and the store is started again before the next one
                step.store_error = str(exc)
                points, now = 0, time.monotonic()
                break
            await listener.send("count")
            received = int((await listener.read_json(10))["marked"])
            now = time.monotonic()
            if points >= step.sent and received >= step.fevers:
                step.stored_after_s = now - last_sent
                break
            if now - last_sent > DRAIN_S + LATE_S:
                break
            await asyncio.sleep(0.2)
        cpu1 = await asyncio.to_thread(sample, system.pid)
        rig1 = await asyncio.to_thread(_cpu_s, rig)
        if not step.store_error:
            try:
                step.store_rows_accepted = (
                    await asyncio.to_thread(rows_inserted, load.store_url) - rows0)
            except (ConnectionError, urllib.error.URLError) as exc:
                step.store_error = str(exc)
        await listener.close_input()
        await listener.read_json(30)
    step.points = points
    step.lost_points = max(step.sent - points, 0)
    step.cpu_s = cpu1.cpu_s - cpu0.cpu_s
    step.cpu_s_per_10k = step.cpu_s / max(step.sent, 1) * 10_000
    wall_s = max(now - (last_sent - load.seconds), 1e-9)
    step.cpu_percent = step.cpu_s / wall_s * 100
    step.rss_peak_kib = cpu1.hwm_kib
    step.rig_cpu_percent = {name: (rig1[name] - rig0[name]) / wall_s * 100
                            for name in rig0 if name in rig1}
    step.rig_cpu_percent["gates"] = gates_cpu_s / wall_s * 100  # as the gates reported it
    losses1 = await system.losses()
    step.dropped = {k: v - losses0.get(k, 0) for k, v in losses1.items()
                    if v - losses0.get(k, 0)}
    fevers = json.loads(await asyncio.to_thread(fevers_file.read_text))["fevers"]
    arrivals = json.loads(await asyncio.to_thread(alerts_file.read_text))
    latencies = _match(system, fevers, arrivals, step)
    summary = Summary.of_seconds(latencies)
    step.latency = summary.as_dict()
    step.passed, step.why = _verdict(step, summary)
    progress(f"  {system.name} at {rate:,.0f}/s: {'pass' if step.passed else 'FAIL'}"
             f" ({step.why}); alerts {step.alerts}/{step.fevers}, p50/p99 "
             f"{summary.p50:.1f}/{summary.p99:.1f} ms, points {step.points}/{step.sent} after "
             f"{step.stored_after_s:.1f} s (store took {step.store_rows_accepted} values), "
             f"CPU {step.cpu_percent:.0f} % (the rig {rig_text(step)})"
             f"{f', dropped {step.dropped}' if step.dropped else ''}")
    return step


def _cpu_s(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process still running (blocking, procfs)."""
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = sample(pid).cpu_s
        except ProcessLookupError:  # gone (a store that stopped): not counted
            continue
    return out


def rig_text(step: Step) -> str:
    """The rest of the rig's CPU in a step, as in "95 %: broker 30, store 40, ..."."""
    shares = step.rig_cpu_percent
    parts = ", ".join(f"{name} {share:.0f}" for name, share in shares.items())
    return f"{sum(shares.values()):.0f} %: {parts}" if shares else "not measured"


def _match(system: System, fevers: list[list[float]], arrivals: list[list[object]],
           step: Step) -> list[float]:
    """Send -> receive for each fever: the n-th alert of a gate answers its n-th fever."""
    sent: defaultdict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for gate, seq, value, sent_at in fevers:
        sent[gate_id(int(gate))].append((int(seq), float(value), float(sent_at)))
    got: defaultdict[str, list[tuple[Alerted, float]]] = defaultdict(list)
    for arrived_at, topic, payload in arrivals:
        alert = system.alerted(str(topic), str(payload))
        if alert is not None:
            got[alert.gate].append((alert, float(str(arrived_at))))
    latencies: list[float] = []
    mismatched = 0
    for name, wanted in sent.items():
        for (seq, value, sent_at), (alert, came) in zip(wanted, got.get(name, []),
                                                        strict=False):
            if (alert.seq is not None and alert.seq != seq) or abs(alert.value - value) > 0.05:
                mismatched += 1
                continue
            latencies.append(came - sent_at)
    step.alerts = sum(len(v) for v in got.values())
    step.lost_alerts = step.fevers - len(latencies)
    if mismatched:
        step.dropped["alerts_out_of_step"] = mismatched
    return latencies


def _verdict(step: Step, latency: Summary) -> tuple[bool, str]:
    if step.store_error:
        return False, f"the store stopped answering ({step.store_error})"
    if step.lost_alerts:
        return False, f"{step.lost_alerts} alert(s) lost"
    if step.lost_points:
        return False, f"{step.lost_points} reading(s) not stored within {DRAIN_S + LATE_S:g} s"
    if not step.stored_after_s <= DRAIN_S:
        return False, (f"stored {step.stored_after_s:.1f} s after the last reading "
                       f"(> {DRAIN_S:g} s): falling behind")
    if step.dropped:
        return False, f"dropped {step.dropped}"
    if not latency.p99 <= P99_LIMIT_MS:
        return False, f"alert p99 {latency.p99:.0f} ms > {P99_LIMIT_MS:g} ms"
    if step.qos and step.acked < step.sent:
        return False, f"the broker acknowledged {step.acked} of {step.sent} publishes"
    if step.achieved_per_s < 0.97 * step.rate:
        return False, f"the publisher managed only {step.achieved_per_s:,.0f}/s"
    return True, "no loss, p99 within limit"


async def search(system: System, load: Load, rates: list[float], progress: Progress,
                 between: Callable[[], Awaitable[None]] | None = None) -> list[Step]:
    """Steps up the rates until one fails, then tries once halfway to the failing rate.

    A failed step is run once more before the rate counts as failed: one garbage
    collection or one busy neighbour on a shared machine must not end the search.
    """
    steps: list[Step] = []

    async def attempt(rate: float) -> bool:
        for _ in range(2):
            if between is not None:
                await between()
            step = await run_step(system, load, rate, progress)
            steps.append(step)
            if step.passed:
                return True
        return False

    for rate in rates:
        if not await attempt(rate):
            passed = [s.rate for s in steps if s.passed]
            if passed:
                middle = round((passed[-1] + rate) / 2, -2)
                if passed[-1] < middle < rate:
                    await attempt(middle)
            break
    return steps


def sustained(steps: list[Step], p99_ms: float = P99_LIMIT_MS) -> Step | None:
    """The highest passing step, with the alert p99 within `p99_ms`."""
    passed = [s for s in steps if s.passed and s.latency.get("p99_ms", math.inf) <= p99_ms]
    return max(passed, key=lambda s: s.rate) if passed else None


def as_json(steps: list[Step]) -> list[dict[str, object]]:
    return [asdict(s) for s in steps]


def check_rates(rates: list[float]) -> list[float]:
    if not rates or sorted(rates) != rates or rates[0] <= 0:
        raise BenchError(f"rates must be positive and increasing: {rates}")
    return rates
