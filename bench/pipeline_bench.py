"""The pipeline benchmark, gateway and Node-RED side by side in one run.

Both run the same flow on the same broker and store, one after the other, with the same
open-loop load (bench.gates) stepped up through the same rates. See bench/pipeline.py for
what a step is and when it passes.

A case is the gates' QoS and their share of fevers: QoS 0 with 2 % fevers is the light
case; QoS 1 (each passage acknowledged by the broker, delivered to the subscribers at
QoS 1) with 10 % fevers is the alert-heavy one, where every fever and the normal reading
after it are two durable alert transitions. Each case starts its systems afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import configs, pipeline
from bench.gateway_bench import Servers
from bench.hostctl import GatewayProcess
from bench.peers.install import PeerUnavailableError, node_red
from bench.peers.node_red import NodeRed, NodeRedSystem, nr_batch_text
from bench.pipeline import Load, Step, System
from bench.procstat import sample
from bench.report import Row
from bench.systems import GatewaySystem, pipeline_gateway
from gateway.ops.private_servers import VictoriaMetrics

Progress = Callable[[str], None]

RATES = [2000.0, 4000.0, 6000.0, 8000.0, 10_000.0, 12_500.0, 15_000.0, 17_500.0, 20_000.0,
         25_000.0, 30_000.0, 40_000.0]
SETTLE_MAX_S = 60.0
QUIET_CPU_S = 0.2  # CPU seconds in one second below which a system counts as quiet
WARMUP_RATE = 1000.0
WARMUP_S = 5.0


@dataclass(frozen=True, slots=True)
class Case:
    """The gates' publishes: their QoS and the share of fevers among the readings."""

    qos: int
    fever_share: float

    @property
    def label(self) -> str:
        return f"QoS {self.qos}, {self.fever_share * 100:g} % fevers"

    @classmethod
    def parse(cls, text: str) -> Case:
        """`QOS:SHARE`, as in `1:0.1`."""
        qos, _, share = text.partition(":")
        try:
            case = cls(int(qos), float(share))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not QOS:SHARE (as in 1:0.1): {text}") from None
        if case.qos not in (0, 1) or not 0 <= case.fever_share < 1:
            raise argparse.ArgumentTypeError(f"QoS 0 or 1 and a share in [0, 1): {text}")
        return case


# the first is the headline case (its row is named "gateway: ...")
CASES = [Case(0, 0.02), Case(1, 0.02), Case(1, 0.10)]


async def _search(system: System, load: Load, rates: list[float], progress: Progress,
                  store: VictoriaMetrics) -> list[Step]:
    # every gate online and every code path warm before anything is measured
    await pipeline.run_step(system, Load(load.port, load.store_url, load.workdir / "warmup",
                                         load.gates, WARMUP_S, load.fever_share, load.seed,
                                         load.qos, load.servers),
                            WARMUP_RATE, lambda _: None)

    async def settle() -> None:
        # a failed step can leave a backlog: the next one starts once the system is quiet
        deadline = time.monotonic() + SETTLE_MAX_S
        before = await asyncio.to_thread(sample, system.pid)
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            after = await asyncio.to_thread(sample, system.pid)
            if after.cpu_s - before.cpu_s < QUIET_CPU_S:
                break
            before = after
        # after the quiet: a store flooded by the step before (the stock Node-RED flow ran
        # it out of files) may have ended only once the flood was over
        if not store.running or not await asyncio.to_thread(store.ready):
            progress(f"  the store had stopped (see {store.workdir / store.name}.log): "
                     "started again")
            await asyncio.to_thread(store.restart)

    return await pipeline.search(system, load, rates, progress, between=settle)


async def run(srv: Servers, workdir: Path, progress: Progress, *, rates: list[float],
              seconds: float, cases: list[Case] | None = None, peers: bool = True,
              store_batch: int | None = None) -> list[Row]:
    rows: list[Row] = []
    for index, case in enumerate(cases or CASES):
        rows += await _case(srv, workdir / f"case{index + 1}", progress, case, rates=rates,
                            seconds=seconds, peers=peers, store_batch=store_batch,
                            headline=index == 0 and case == CASES[0])
    return rows


async def _case(srv: Servers, workdir: Path, progress: Progress, case: Case, *,
                rates: list[float], seconds: float, peers: bool, store_batch: int | None,
                headline: bool) -> list[Row]:
    load = Load(srv.mosquitto.port, srv.store.url, workdir / "pipeline", seconds=seconds,
                fever_share=case.fever_share, qos=case.qos,
                servers=lambda: {"broker": srv.mosquitto.pid, "store": srv.store.pid})
    await asyncio.to_thread((load.workdir / "warmup").mkdir, parents=True, exist_ok=True)
    rows: list[Row] = []
    progress(f"pipeline ({case.label}): the gateway, {load.gates} gates, rates up to "
             f"{rates[-1]:,.0f}/s, {seconds:g} s each")
    where = workdir / "gateway-pipeline"
    config = pipeline_gateway(where, srv, store_batch=store_batch)
    async with GatewayProcess("gateway-pipeline", config, where) as gw:
        ours = await _search(GatewaySystem(gw), load, rates, progress, srv.store)
    batch = f"store batches of {config['store'].get('batch_size', configs.STORE_BATCH)}"
    name = "gateway" if headline else f"gateway ({case.label})"
    rows.append(_summary(name, ours, seconds, batch))
    if not peers:
        return rows
    try:
        install = await asyncio.to_thread(node_red, progress)
    except PeerUnavailableError as exc:
        rows.append(Row("pipeline", f"Node-RED ({case.label})", "skipped", str(exc),
                        {"skipped": str(exc)}))
        return rows
    suffix = "" if headline else f" ({case.label})"
    for batched in (False, True):
        flow = "batched store writes" if batched else "one store write per reading"
        progress(f"pipeline ({case.label}): Node-RED {install.version}, the same flow and "
                 f"load, {flow}")
        async with NodeRed(install, workdir / ("nr-batched" if batched else "nr"),
                           srv.mosquitto.port, srv.store.url, batched=batched) as nr:
            theirs = await _search(NodeRedSystem(nr), load, rates, progress, srv.store)
        label = f"Node-RED {install.version}{' batched' if batched else ''}{suffix}"
        how = (f"store writes batched ({nr_batch_text()})" if batched
               else "one store write per reading (its influxdb out node)")
        rows.append(_summary(label, theirs, seconds, how))
        rows.append(_ratio(ours, theirs, "batched" if batched else "",
                           "" if headline else f"{case.label}: "))
    return rows


def _summary(name: str, steps: list[Step], seconds: float, how: str) -> Row:
    best = pipeline.sustained(steps)
    # the targets judge the alert p99 at TARGET_P99_MS, stricter than a step's pass
    strict = pipeline.sustained(steps, pipeline.TARGET_P99_MS)
    within = {f"sustained_p99_{pipeline.TARGET_P99_MS:g}_ms_per_s":
              strict.rate if strict is not None else 0.0}
    failed = [s for s in steps if not s.passed]
    limit = (f"first failure at {failed[0].rate:,.0f}/s: {failed[0].why}" if failed
             else "no rate failed")
    extra = {"steps": pipeline.as_json(steps)}
    if best is None:
        return Row("pipeline", f"{name}: highest sustained rate", "none passed", limit,
                   {"sustained_per_s": 0.0, **within}, extra)
    lat = best.latency
    return Row(
        "pipeline", f"{name}: highest sustained rate (200 gates, {seconds:g} s steps)",
        f"{best.rate:,.0f} events/s",
        f"alert p50/p99 {lat['p50_ms']:.1f}/{lat['p99_ms']:.1f} ms; {best.alerts} alerts of "
        f"{best.fevers} fevers; {best.points:,} points stored; {best.cpu_s_per_10k:.2f} CPU-s "
        f"per 10k events ({best.cpu_percent:.0f} % of a core; the rest of the rig "
        f"{pipeline.rig_text(best)} of {os.cpu_count()} cores' {100 * (os.cpu_count() or 1)} "
        f"%); peak RSS {best.rss_peak_kib / 1024:.0f} MiB; {how}; {limit}",
        {"sustained_per_s": best.rate, "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
         "cpu_s_per_10k": best.cpu_s_per_10k, "cpu_percent": best.cpu_percent,
         "rig_cpu_percent": sum(best.rig_cpu_percent.values()),
         "rss_peak_kib": best.rss_peak_kib, "alerts": best.alerts, "fevers": best.fevers,
         **within},
        extra)


def _ratio(ours: list[Step], theirs: list[Step], flow: str = "", prefix: str = "") -> Row:
    a, b = pipeline.sustained(ours), pipeline.sustained(theirs)
    peer = f"Node-RED {flow}".strip()
    if a is None or b is None:
        return Row("pipeline", f"{prefix}gateway / {peer}", "n/a",
                   "one of them passed no step", {})
    cpu = b.cpu_s_per_10k / a.cpu_s_per_10k if a.cpu_s_per_10k else float("nan")
    return Row("pipeline", f"{prefix}gateway / {peer} (same run)",
               f"{a.rate / b.rate:.2f}x events/s",
               f"{cpu:.2f}x less CPU per event at their highest rates; peak RSS "
               f"{a.rss_peak_kib / 1024:.0f} vs {b.rss_peak_kib / 1024:.0f} MiB",
               {"rate_ratio": a.rate / b.rate, "cpu_per_event_ratio": cpu})
