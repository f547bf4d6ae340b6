"""`python -m bench`: measure the gateway against its targets and its peers; print a table.

    python -m bench                       # everything, 3 runs, medians (about 40 minutes)
    python -m bench --runs 1 --only pipeline --only modbus
    python -m bench --quick               # every benchmark, short, one run (a smoke test)

Results go to bench/results/<benchmark>.json as well. The peers (Node-RED and ThingsBoard's
IoT gateway) are installed into bench/.peers/ at first use; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from bench import (
    alarm_load,
    alarm_path,
    city,
    compound_day,
    configs,
    footprint,
    gateway_bench,
    journal_bench,
    modbus_bench,
    pipeline_bench,
    push_storm,
    replay,
    rs485,
    storm,
)
from bench.gateway_bench import Servers, Sizes
from bench.hostctl import REPO, BenchError
from bench.machine import Machine, describe
from bench.report import Row, machine_text, table
from bench.targets import HEADLINE, HEADLINE_KEYS, RESULT_FILES, judge
from gateway.ops.private_servers import ServiceError

NEW = ("compound-day", "pipeline", "alarm-load", "alarm-path", "modbus", "rs485", "footprint",
       "replay", "city", "storm", "broker-replay", "flood", "push-storm", "push-replay",
       "push-flood")
OLD = ("journal", "latency", "ingress", "memory", "idle")
BENCHMARKS = NEW + OLD
RESULTS = REPO / "bench" / "results"


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}"
                                         ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("producer counts must be >= 1")
    return values


def _rates(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text}"
                                         ) from None
    if not values or values != sorted(values) or values[0] <= 0:
        raise argparse.ArgumentTypeError("rates must be positive and increasing")
    return values


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the smart-community gateway against its performance "
                    "targets, side by side with Node-RED and ThingsBoard's IoT gateway. Starts "
                    "a private Mosquitto and VictoriaMetrics on free loopback ports.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                   help=f"run only this benchmark ({', '.join(BENCHMARKS)}); may be repeated")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="repeat everything N times and report medians (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="short versions of everything, one run: a smoke test, not figures")
    p.add_argument("--no-peers", action="store_true",
                   help="skip Node-RED and ThingsBoard's gateway (no installs)")
    g = p.add_argument_group("pipeline, alarm under load")
    g.add_argument("--rates", type=_rates, default=pipeline_bench.RATES, metavar="R,R,...",
                   help="pipeline: events/s to step through until one fails")
    g.add_argument("--step-seconds", type=_positive(float), default=10.0, metavar="S",
                   help="pipeline: length of each step (default 10)")
    g.add_argument("--pipeline-case", action="append", type=pipeline_bench.Case.parse,
                   metavar="QOS:SHARE", dest="pipeline_cases",
                   help="pipeline: the gates' QoS and share of readings above 37.3 °C, as in "
                        "1:0.1; may be repeated (default: 0:0.02, 1:0.02 and 1:0.1)")
    g.add_argument("--store-batch", type=int, default=None, metavar="N",
                   help="pipeline, alarm under load: the gateway's store.batch_size (default: "
                        "the gateway's own default)")
    g.add_argument("--alarm-presses", type=_positive(int), default=1000, metavar="N",
                   help="alarm under load: measured presses (default 1000)")
    g.add_argument("--alarm-rate", type=_positive(float), default=0.0, metavar="R",
                   help="alarm under load: gate load in events/s (default: half the "
                        "gateway's sustained rate of the same run, else 2000)")
    g.add_argument("--alarm-path-presses", type=_positive(int), default=200, metavar="N",
                   help="alarm path: measured presses at each length of the event loop's "
                        "busy turns (default 200)")
    g = p.add_argument_group("modbus, RS-485, footprint, replay")
    g.add_argument("--modbus-poll-ms", type=int, default=100, metavar="MS",
                   help="modbus: poll period of every device (default 100)")
    g.add_argument("--modbus-seconds", type=_positive(float), default=20.0, metavar="S")
    g.add_argument("--rs485-seconds", type=_positive(float), default=20.0, metavar="S")
    g.add_argument("--footprint-devices", type=int, default=1000, metavar="N")
    g.add_argument("--day-seconds", type=_positive(float), default=120.0, metavar="S",
                   help="compound day: length of the measured period (default 120)")
    g.add_argument("--replay-points", type=int, default=100_000, metavar="N")
    g = p.add_argument_group("city")
    g.add_argument("--city-burst", type=int, default=1000, metavar="N",
                   help="city: alarms per gateway of the burst (three gateways; default 1000)")
    g.add_argument("--city-parcels", type=int, default=20_000, metavar="N",
                   help="city: parcels published through one NATS node (default 20000)")
    g.add_argument("--city-seconds", type=_positive(float), default=60.0, metavar="S",
                   help="city: how long the simulated compound is measured (default 60)")
    g = p.add_argument_group("storm, broker-replay, flood")
    g.add_argument("--storm-rate", type=_positive(float), default=5 * storm.SUSTAINED_PER_S,
                   metavar="R", help="storm: the gates' QoS 1 rate (default: five times the "
                   "pipeline's sustained rate)")
    g.add_argument("--storm-seconds", type=_positive(float), default=60.0, metavar="S")
    g.add_argument("--storm-memory-mb", type=_positive(float), default=storm.MEMORY_MB,
                   metavar="MB", help="storm: the gateway's limits.memory_mb (default 256)")
    g.add_argument("--broker-replay-queued", type=int, default=100_000, metavar="N",
                   help="broker-replay: readings queued by the broker for the stopped gateway")
    g.add_argument("--broker-replay-seconds", type=_positive(float), default=None,
                   metavar="S", help="broker-replay: how long the gateway is stopped while "
                   "the gates publish them (default: at 10,000/s)")
    g.add_argument("--flood-rate", type=_positive(float), default=2000.0, metavar="R")
    g.add_argument("--flood-seconds", type=_positive(float), default=60.0, metavar="S")
    g = p.add_argument_group("push-storm, push-replay, push-flood (the HTTP push port)")
    g.add_argument("--push-gates", type=int, default=200, metavar="N",
                   help="push-storm, push-replay: gates (default 200)")
    g.add_argument("--push-storm-rate", type=_positive(float), default=25.0, metavar="R",
                   help="push-storm: passages a second per gate (default 25: 5,000/s)")
    g.add_argument("--push-storm-seconds", type=_positive(float), default=60.0, metavar="S")
    g.add_argument("--push-connections", type=int, default=1000, metavar="N",
                   help="push-storm: connections held against the port (default 1000)")
    g.add_argument("--push-replay-seconds", type=_positive(float), default=30.0, metavar="S",
                   help="push-replay: how long the gateway is down (default 30)")
    g.add_argument("--push-flood-rate", type=_positive(float), default=2000.0, metavar="R")
    g.add_argument("--push-flood-seconds", type=_positive(float), default=60.0, metavar="S",
                   help="push-flood: how long the flooder pushes, in turns of 10 s on and "
                   "10 s off (default 60)")
    g.add_argument("--push-flood-hold", type=float, default=1.0, metavar="S",
                   help="push-flood: the gateway's http.throttled_hold_s (default 1)")
    g = p.add_argument_group("journal, latency, ingress, memory, idle")
    g.add_argument("--producers", type=_counts, default=[1, 16, 256], metavar="N,N,...",
                   help="journal: concurrent producers per run (default 1,16,256)")
    g.add_argument("--journal-seconds", type=_positive(float), default=3.0, metavar="S")
    g.add_argument("--presses", type=_positive(int), default=200, metavar="N",
                   help="latency: measured button presses without load (default 200)")
    g.add_argument("--buttons", type=int, default=10, choices=range(1, configs.MAX_BUTTONS + 1),
                   metavar="N", help=f"latency: GPIO buttons, 1-{configs.MAX_BUTTONS}")
    g.add_argument("--hold", type=_positive(float), default=0.05, metavar="S",
                   help="how long each press is held (default 0.05 s)")
    g.add_argument("--store-presses", type=_positive(int), default=10, metavar="N")
    g.add_argument("--ingress-messages", type=_positive(int), default=20_000, metavar="N")
    g.add_argument("--ingress-devices", type=int, default=10, choices=range(1, 101),
                   metavar="N")
    g.add_argument("--event-messages", type=_positive(int), default=2_000, metavar="N")
    g.add_argument("--qos", type=int, choices=(0, 1), default=0)
    g.add_argument("--ingress-rate", type=_positive(float), default=0.0, metavar="N")
    g.add_argument("--idle-seconds", type=_positive(float), default=10.0, metavar="S")
    p.add_argument("--tmpdir", type=Path, default=None, metavar="DIR",
                   help="where journals and the servers' data go (default: the system's temp "
                        "dir); its file system decides what an fsync costs")
    p.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                   help=f"where the JSON results go (default {RESULTS.relative_to(REPO)})")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, journals)")
    p.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    return p


def _quick(args: argparse.Namespace) -> None:
    args.runs = 1
    args.rates, args.step_seconds = [2000.0, 4000.0, 8000.0], 4.0
    if not args.pipeline_cases:
        args.pipeline_cases = pipeline_bench.CASES[:1]  # the headline case alone
    args.alarm_presses, args.presses, args.store_presses = 50, 50, 3
    args.alarm_path_presses = 20
    args.modbus_seconds = args.rs485_seconds = 6.0
    args.day_seconds = 30.0
    args.replay_points, args.journal_seconds = 20_000, 1.0
    args.city_burst, args.city_parcels, args.city_seconds = 300, 5000, 20.0
    args.ingress_messages, args.event_messages, args.idle_seconds = 5000, 500, 3.0
    args.storm_seconds, args.broker_replay_queued, args.flood_seconds = 10.0, 20_000, 10.0
    args.push_storm_seconds, args.push_replay_seconds, args.push_flood_seconds = 10.0, 5.0, 10.0


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def one_run(args: argparse.Namespace, want: set[str], workdir: Path) -> list[Row]:
    sizes = Sizes(presses=args.presses, buttons=args.buttons, hold_s=args.hold,
                  store_presses=args.store_presses, ingress_messages=args.ingress_messages,
                  ingress_devices=args.ingress_devices, event_messages=args.event_messages,
                  qos=args.qos, ingress_rate=args.ingress_rate, idle_seconds=args.idle_seconds)
    peers = not args.no_peers
    rows: list[Row] = []
    if "journal" in want:
        _progress(f"journal append: producers {args.producers}, {args.journal_seconds:g} s each")
        journal_dir = workdir / "journal"
        await asyncio.to_thread(journal_dir.mkdir)
        rows += await journal_bench.run(journal_dir, args.producers, args.journal_seconds)
    _progress("starting Mosquitto and VictoriaMetrics")
    async with gateway_bench.servers(workdir) as srv:
        if "compound-day" in want:
            rows += await compound_day.run(srv, workdir, _progress, seconds=args.day_seconds,
                                           count=args.footprint_devices)
        if "pipeline" in want:
            rows += await pipeline_bench.run(srv, workdir, _progress, rates=args.rates,
                                             seconds=args.step_seconds,
                                             cases=args.pipeline_cases, peers=peers,
                                             store_batch=args.store_batch)
        if "alarm-load" in want:
            rows += await alarm_load.run(srv, workdir, _progress, rate=_alarm_rate(args, rows),
                                         presses=args.alarm_presses,
                                         sizes=replace(sizes, gap_s=0.02),
                                         store_batch=args.store_batch)
        if "alarm-path" in want:
            rows += await alarm_path.run(srv, workdir, _progress,
                                         presses=args.alarm_path_presses)
        if "modbus" in want:
            rows += await modbus_bench.run(srv, workdir, _progress, poll_ms=args.modbus_poll_ms,
                                           seconds=args.modbus_seconds, peers=peers)
        if "rs485" in want:
            rows += await rs485.run(srv, workdir, _progress, seconds=args.rs485_seconds)
        if "footprint" in want:
            rows += await footprint.run(srv, workdir, _progress, count=args.footprint_devices)
        if "replay" in want:
            rows += await replay.run(srv, workdir, _progress, points=args.replay_points)
        if "city" in want:
            rows += await city.run(srv, workdir, _progress, burst=args.city_burst,
                                   parcels=args.city_parcels, seconds=args.city_seconds)
        if "storm" in want:
            rows += await storm.storm(srv, workdir, _progress, rate=args.storm_rate,
                                      seconds=args.storm_seconds,
                                      memory_mb=args.storm_memory_mb)
        if "broker-replay" in want:
            queued = args.broker_replay_queued
            rows += await storm.broker_replay(
                srv, workdir, _progress, queued=queued,
                rate=queued / args.broker_replay_seconds if args.broker_replay_seconds
                else storm.REPLAY_RATE)
        if "flood" in want:
            rows += await storm.flood(srv, workdir, _progress, rate=args.flood_rate,
                                      seconds=args.flood_seconds)
        if "push-storm" in want:
            rows += await push_storm.push_storm(
                srv, workdir, _progress, gates=args.push_gates, rate=args.push_storm_rate,
                seconds=args.push_storm_seconds, connections=args.push_connections)
        if "push-replay" in want:
            rows += await push_storm.push_replay(srv, workdir, _progress, gates=args.push_gates,
                                                 seconds=args.push_replay_seconds)
        if "push-flood" in want:
            rows += await push_storm.push_flood(srv, workdir, _progress,
                                                rate=args.push_flood_rate,
                                                seconds=args.push_flood_seconds,
                                                hold_s=args.push_flood_hold)
        rows += await _old(srv, workdir, sizes, want)
    return rows


async def _old(srv: Servers, workdir: Path, sizes: Sizes, want: set[str]) -> list[Row]:
    rows: list[Row] = []
    if "idle" in want:
        rows += await gateway_bench.idle(srv, workdir, sizes, _progress)
    if want & {"latency", "ingress", "memory", "idle"}:
        rows += await gateway_bench.loaded(srv, workdir, sizes, want, _progress)
    if "memory" not in want:
        rows = [r for r in rows if r.bench != "memory"]
    return rows


def _alarm_rate(args: argparse.Namespace, rows: list[Row]) -> float:
    if args.alarm_rate:
        return float(args.alarm_rate)
    for row in rows:
        if row.bench == "pipeline" and row.case.startswith("gateway:"):
            sustained = float(row.data.get("sustained_per_s", 0.0))
            if sustained > 0:
                return sustained / 2
    return 2000.0


async def run_all(args: argparse.Namespace, want: set[str], base: Path,
                  checkpoint: Callable[[list[list[Row]]], None]) -> list[list[Row]]:
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # clean up, as on Ctrl-C
    runs = []
    for index in range(args.runs):
        _progress(f"run {index + 1} of {args.runs}")
        workdir = base / f"run{index + 1}"
        await asyncio.to_thread(workdir.mkdir)
        runs.append(await one_run(args, want, workdir))
        await asyncio.to_thread(checkpoint, runs)  # what is done stays done
    return runs


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """Per figure, the run with the median headline value, the others' values noted."""
    if len(runs) == 1:
        return runs[0]
    out = []
    for position, row in enumerate(runs[0]):
        same = [r[position] for r in runs
                if position < len(r) and (r[position].bench, _shape(r[position].case)) ==
                (row.bench, _shape(row.case))]
        values = [(_headline(r), r) for r in same]
        numeric = sorted([(v, r) for v, r in values if not math.isnan(v)], key=lambda x: x[0])
        if not numeric:
            out.append(row)
            continue
        _, chosen = numeric[(len(numeric) - 1) // 2]
        spread = " / ".join(_number(v) for v, _ in values)
        out.append(replace(chosen, result=f"{chosen.result} (median of {len(values)}: "
                                            f"{spread})"))
    return out


def _shape(case: str) -> str:
    """A case without its measured numbers, to pair the same figure across runs."""
    return "".join(c for c in case if not c.isdigit())


def _headline(row: Row) -> float:
    key = HEADLINE.get(row.bench)
    for k in ([key] if key else []) + list(HEADLINE_KEYS) + list(row.data):
        value = row.data.get(k) if k else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return math.nan


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def write_results(directory: Path, machine: Machine, command: str, runs: list[list[Row]],
                  medians: list[Row], judged: list[Row]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    groups: dict[str, str] = {}
    for row in medians:
        groups.setdefault(RESULT_FILES.get(row.bench, "gateway"), "")
    for group in groups:
        def mine(rows: list[Row], group: str = group) -> list[dict[str, object]]:
            return [asdict(r) for r in rows if RESULT_FILES.get(r.bench, "gateway") == group]
        path = directory / f"{group}.json"
        path.write_text(json.dumps({
            "machine": asdict(machine), "command": command, "runs": len(runs),
            "median": mine(medians), "all_runs": [mine(r) for r in runs],
            "targets": [asdict(r) for r in judged
                        if RESULT_FILES.get(str(r.data.get("bench", "")), "") == group],
        }, indent=2, default=str))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.quick:
        _quick(args)
    if args.runs < 1:
        cli.error("--runs must be >= 1")
    debounce_s = configs.DEBOUNCE_MS / 1000
    if not debounce_s < args.hold < configs.LONG_PRESS_S:
        cli.error(f"--hold must be between the debounce ({debounce_s:g} s) and the long press "
                  f"that cancels ({configs.LONG_PRESS_S:g} s)")
    if args.tmpdir is not None and not args.tmpdir.is_dir():
        cli.error(f"--tmpdir {args.tmpdir} is not a directory")
    want = set(args.only or BENCHMARKS)
    if "memory" in want:
        want |= {"latency", "ingress"}
    base = Path(tempfile.mkdtemp(prefix="scgw-bench-", dir=args.tmpdir))
    machine = describe(base)
    print(machine_text(machine, markdown=args.markdown), flush=True)
    print(flush=True)
    started = time.monotonic()
    keep = args.keep
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)

    def checkpoint(runs: list[list[Row]]) -> None:
        medians = median_rows(runs)
        write_results(args.results, machine, command.strip(), runs, medians, judge(medians))

    try:
        runs = asyncio.run(run_all(args, want, base, checkpoint))
    except (BenchError, ServiceError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        keep = True  # the logs tell why
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"work dir kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    medians = median_rows(runs)
    judged = judge(medians)
    print(table(medians, markdown=args.markdown))
    print()
    print(table(judged, markdown=args.markdown))
    try:
        written = write_results(args.results, machine, command.strip(), runs, medians, judged)
    except OSError as exc:
        print(f"could not write the results: {exc}", file=sys.stderr)
        return 1
    names = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in written]
    print(f"\n{len(medians)} figures from {len(runs)} run(s) in "
          f"{time.monotonic() - started:.0f} s; JSON: {', '.join(names)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
