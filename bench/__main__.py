"""`python -m bench`: measure the gateway and print a table of the figures.

    python -m bench                      # everything, default sizes (about 2 minutes)
    python -m bench --only journal      # one benchmark (repeat --only for several)
    python -m bench --presses 500 --ingress-messages 50000 --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import configs, gateway_bench, journal_bench
from bench.gateway_bench import Sizes
from bench.hostctl import BenchError
from bench.machine import describe
from bench.report import Row, machine_text, table
from gateway.services import ServiceError

BENCHMARKS = ("journal", "latency", "ingress", "memory", "idle")


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}"
                                         ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("producer counts must be >= 1")
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
        description="Benchmarks of the smart-community gateway: journal append throughput, "
                    "end-to-end alarm latency, MQTT ingress throughput, memory and idle CPU. "
                    "Starts a private Mosquitto and VictoriaMetrics on free loopback ports.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                   help=f"run only this benchmark ({', '.join(BENCHMARKS)}); may be repeated. "
                        "memory is measured on the gateway that runs latency and ingress, so "
                        "it runs those too")
    p.add_argument("--producers", type=_counts, default=[1, 16, 256], metavar="N,N,...",
                   help="journal: concurrent producers per run (default 1,16,256)")
    p.add_argument("--journal-seconds", type=_positive(float), default=3.0, metavar="S",
                   help="journal: seconds per producer count (default 3)")
    p.add_argument("--presses", type=_positive(int), default=200, metavar="N",
                   help="latency: measured button presses (default 200)")
    p.add_argument("--buttons", type=int, default=10, choices=range(1, configs.MAX_BUTTONS + 1),
                   metavar="N", help=f"latency: GPIO buttons, 1-{configs.MAX_BUTTONS} "
                                     "(default 10)")
    p.add_argument("--hold", type=_positive(float), default=0.05, metavar="S",
                   help="latency: how long each press is held (default 0.05 s)")
    p.add_argument("--store-presses", type=_positive(int), default=10, metavar="N",
                   help="latency: presses timed until a store query returns the point "
                        "(default 10; 0 skips)")
    p.add_argument("--ingress-messages", type=_positive(int), default=20_000, metavar="N",
                   help="ingress: telemetry messages (default 20000; 0 skips)")
    p.add_argument("--ingress-devices", type=int, default=10, choices=range(1, 101),
                   metavar="N", help="ingress: MQTT telemetry devices (default 10)")
    p.add_argument("--event-messages", type=_positive(int), default=2_000, metavar="N",
                   help="ingress: messages that each carry an event (default 2000; 0 skips)")
    p.add_argument("--qos", type=int, choices=(0, 1), default=0,
                   help="ingress: QoS the publisher uses (default 0)")
    p.add_argument("--ingress-rate", type=_positive(float), default=0.0, metavar="N",
                   help="ingress: messages/s the publisher holds (default 0: as fast as it "
                        "can, which finds the gateway's limit)")
    p.add_argument("--idle-seconds", type=_positive(float), default=10.0, metavar="S",
                   help="idle: seconds of idle CPU measured (default 10)")
    p.add_argument("--tmpdir", type=Path, default=None, metavar="DIR",
                   help="where the journals and the servers' data go (default: the system's "
                        "temp dir); its file system decides what an fsync costs")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, journals)")
    p.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write machine and figures as JSON to FILE")
    return p


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, want: set[str], workdir: Path) -> list[Row]:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)  # stop and clean up, as on Ctrl-C
    sizes = Sizes(presses=args.presses, buttons=args.buttons, hold_s=args.hold,
                  store_presses=args.store_presses, ingress_messages=args.ingress_messages,
                  ingress_devices=args.ingress_devices, event_messages=args.event_messages,
                  qos=args.qos, ingress_rate=args.ingress_rate, idle_seconds=args.idle_seconds)
    rows: list[Row] = []
    if "journal" in want:
        _progress(f"journal append: producers {args.producers}, {args.journal_seconds:g} s each")
        journal_dir = workdir / "journal"
        await asyncio.to_thread(journal_dir.mkdir)
        rows += await journal_bench.run(journal_dir, args.producers, args.journal_seconds)
    if want & {"idle", "latency", "ingress", "memory"}:
        _progress("starting Mosquitto and VictoriaMetrics")
        async with gateway_bench.servers(workdir) as srv:
            if "idle" in want:
                rows += await gateway_bench.idle(srv, workdir, sizes, _progress)
            rows += await gateway_bench.loaded(srv, workdir, sizes, want, _progress)
    if "memory" not in want:
        rows = [r for r in rows if r.bench != "memory"]
    return rows


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    debounce_s = configs.DEBOUNCE_MS / 1000
    if not debounce_s < args.hold < configs.LONG_PRESS_S:
        cli.error(f"--hold must be between the debounce ({debounce_s:g} s) and the long press "
                  f"that cancels ({configs.LONG_PRESS_S:g} s)")
    if args.tmpdir is not None and not args.tmpdir.is_dir():
        cli.error(f"--tmpdir {args.tmpdir} is not a directory")
    want = set(args.only or BENCHMARKS)
    if "memory" in want:
        want |= {"latency", "ingress"}
    workdir = Path(tempfile.mkdtemp(prefix="scgw-bench-", dir=args.tmpdir))
    machine = describe(workdir)
    print(machine_text(machine, markdown=args.markdown), flush=True)
    print(flush=True)
    started = time.monotonic()
    keep = args.keep
    try:
        rows = asyncio.run(run(args, want, workdir))
    except (BenchError, ServiceError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        keep = True  # the logs tell why
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows, markdown=args.markdown))
    print(f"\n{len(rows)} figures in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(
                {"machine": asdict(machine), "rows": [asdict(r) for r in rows]}, indent=2))
        except OSError as exc:
            print(f"could not write {args.json}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
