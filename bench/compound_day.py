"""A compound's ordinary day: what the gateway costs the Pi's SD card, CPU and memory.

The gateway of the footprint benchmark (1,000 MQTT devices of the five kinds, the shipped
rules) gets the load of `bench.compound_load` for a fixed period. Measured from outside:

- bytes written to disk by the gateway process, from `/proc/PID/io` `write_bytes` (what
  reaches the block layer: the journal, its WAL, logs), extrapolated to a day. The status
  file goes to a RAM file system, as the installed configuration has it;
- fsyncs (fsync + fdatasync) per second and per file, and the bytes handed to write(2) per
  file, traced by `strace -f -y` attached to the process for the second half of the period
  (strace slows the calls it traces, so the CPU figure comes from the first half);
- CPU share and resident memory from /proc;
- SOS latency: an MQTT button's press published -> the retained `firing` alert received.

The period measured is the compound's steady traffic. Alarms are measured apart, each as
the bytes written while it is handled beyond the steady rate, and counted into the day at
SOS_PER_DAY presses and FIRES_PER_DAY fires: a period of two minutes with a fire in it,
extrapolated, would be a day of 720 fires. The measurement starts once the gateway's first
prune (of its own start's backlog) is behind it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import configs, footprint
from bench.children import Child, python_module
from bench.gateway_bench import Servers
from bench.hostctl import BenchError, GatewayProcess
from bench.procstat import sample
from bench.report import Row
from bench.stats import Summary

Progress = Callable[[str], None]

SITE = "day"
DAY_S = 86_400
SOS_PER_DAY = 20  # a large compound's elders: a few presses a day, counted generously
FIRES_PER_DAY = 1  # a smoke sensor in alarm and clear: far more than a compound has
SOS_PRESSES = 4  # measured per run
FIRST_PRUNE_S = 65  # the gateway's first prune (prune_interval_s 60) is behind the period


def _ram_dir() -> Path:
    for candidate in (Path("/dev/shm"), Path("/run")):
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    raise BenchError("no RAM file system (/dev/shm, /run) for the status file")


def written_bytes(pid: int) -> int:
    """write_bytes of /proc/PID/io: what the process caused to be written to storage."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "write_bytes":
                return int(value)
    raise BenchError(f"/proc/{pid}/io has no write_bytes (no task I/O accounting?)")


_CALL = re.compile(r"^\d+\s+(\w+)\(\d+<([^>]*)>.*\)\s+=\s+(-?\d+)")
_SYNCS = ("fsync", "fdatasync", "sync_file_range")


@dataclass(frozen=True, slots=True)
class FileIo:
    syncs: Counter[str]  # fsync-like calls per file
    written: Counter[str]  # bytes handed to write(2) and friends per file


def file_io(trace: str) -> FileIo:
    """Per file name, from `strace -f -y` output: syncs and bytes written (sockets left out)."""
    syncs: Counter[str] = Counter()
    written: Counter[str] = Counter()
    for line in trace.splitlines():
        match = _CALL.match(line)
        if match is None or not match.group(2).startswith("/"):
            continue
        call, name, result = match.group(1), Path(match.group(2)).name, int(match.group(3))
        if call in _SYNCS:
            syncs[name] += 1
        elif result > 0:
            written[name] += result
    return FileIo(syncs, written)


async def _trace_io(pid: int, seconds: float, workdir: Path) -> FileIo:
    strace = shutil.which("strace")
    if strace is None:
        raise BenchError("strace is needed to count fsyncs: sudo apt-get install strace")
    out = workdir / "strace-io.txt"
    proc = await asyncio.create_subprocess_exec(
        strace, "-f", "-y", "-e", "trace=fsync,fdatasync,sync_file_range,write,pwrite64,writev",
        "-o", str(out), "-p", str(pid), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(seconds)
    proc.send_signal(signal.SIGINT)  # detach
    _, err = await proc.communicate()
    if not out.exists():
        raise BenchError(f"strace could not attach to the gateway: {err.decode().strip()}")
    return file_io(await asyncio.to_thread(out.read_text))


def _top(counts: Counter[str], show: Callable[[int], str]) -> str:
    return ", ".join(f"{name} {show(n)}" for name, n in counts.most_common(4)) or "none"


async def run(srv: Servers, workdir: Path, progress: Progress, *, seconds: float = 120.0,
              count: int = 1000) -> list[Row]:
    half = seconds / 2
    progress(f"compound day: {count} devices, {seconds:g} s of a compound's load "
             "(half with strace counting fsyncs)")
    where = workdir / "gateway-compound-day"
    config = configs.gateway(SITE, where, srv.mosquitto.port, srv.store.url,
                             footprint.devices(count))
    # in RAM, as the installed configuration has it (/run/scgw); the journal on the disk
    config["journal"]["status_path"] = str(_ram_dir() / f"scgw-bench-{os.getpid()}.json")
    async with GatewayProcess("gateway-compound-day", config, where) as gw, \
            Child("compound-load", python_module(
                "bench.compound_load", "--port", str(srv.mosquitto.port), "--site", SITE,
                "--devices", str(count), "--seconds", f"{seconds + 300:g}"), workdir) as load:
        up = asyncio.get_running_loop().time()
        await load.read_json(60)
        await load.send("go")
        await load.read_json(60)  # every device has spoken once
        # the gateway has journalled them online, and pruned its start's backlog
        await asyncio.sleep(max(10.0, FIRST_PRUNE_S - (asyncio.get_running_loop().time() - up)))
        bytes0, cpu0 = written_bytes(gw.pid), sample(gw.pid)
        await asyncio.sleep(half)
        cpu1 = sample(gw.pid)
        traced = await _trace_io(gw.pid, half, workdir)
        bytes2, cpu2 = written_bytes(gw.pid), sample(gw.pid)
        steady = (bytes2 - bytes0) / seconds  # bytes per second
        progress(f"compound day: steady {steady * DAY_S / 2**20:,.1f} MiB/day; "
                 f"now {SOS_PRESSES} SOS presses and a fire")
        sos_bytes, answer = await _alarm(gw.pid, load, f"sos {SOS_PRESSES}", steady)
        latencies = [float(x) for x in answer["sos_latencies_s"]]
        fire_bytes, _ = await _alarm(gw.pid, load, "fire", steady)
        await load.send("end")
        result = await load.read_json(60)
    per_sos = sos_bytes / SOS_PRESSES
    per_day = steady * DAY_S + per_sos * SOS_PER_DAY + fire_bytes * FIRES_PER_DAY
    wall = seconds
    syncs = sum(traced.syncs.values())
    files = _top(traced.syncs, str)
    writes = _top(traced.written, lambda n: f"{n / half * DAY_S / 2**20:,.0f} MiB/day")
    cpu_share = (cpu1.cpu_s - cpu0.cpu_s) / half * 100
    sent = {str(k): int(v) for k, v in result["sent"].items()}
    periodic = sum(v for k, v in sent.items() if k not in ("sos", "fire"))
    rate = periodic / float(result["seconds"])
    lost = sum(1 for x in latencies if x == float("inf"))
    sos = Summary.of_seconds([x for x in latencies if x != float("inf")])
    load_text = f"{rate:,.0f} msg/s ({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))})"
    return [
        Row("compound-day", f"{count} devices, {load_text}, disk writes",
            f"{per_day / 2**20:,.1f} MiB/day",
            f"steady {steady * DAY_S / 2**20:,.1f} MiB/day ({(bytes2 - bytes0) / 2**10:,.0f} KiB "
            f"in {wall:g} s, /proc/PID/io write_bytes) + {SOS_PER_DAY} SOS x "
            f"{per_sos / 2**10:,.0f} KiB + {FIRES_PER_DAY} fire x {fire_bytes / 2**10:,.0f} KiB; "
            f"write(2) by file: {writes}",
            {"bytes_per_day": per_day, "steady_bytes_per_day": steady * DAY_S,
             "bytes_per_sos": per_sos, "bytes_per_fire": fire_bytes,
             "bytes": bytes2 - bytes0, "seconds": wall, "messages_per_s": rate}),
        Row("compound-day", f"{count} devices, fsyncs", f"{syncs / half:.2f} /s",
            f"{syncs} fsync/fdatasync in {half:g} s (strace -f -y): {files}",
            {"fsyncs_per_s": syncs / half, "fsyncs": syncs}),
        Row("compound-day", f"{count} devices, CPU and memory",
            f"{cpu_share:.1f} % of one core", f"RSS {cpu2.rss_kib / 1024:.1f} MiB, peak "
            f"{cpu2.hwm_kib / 1024:.1f} MiB",
            {"cpu_percent": cpu_share, "rss_kib": cpu2.rss_kib, "hwm_kib": cpu2.hwm_kib}),
        Row("compound-day", f"{count} devices, SOS press -> retained alert",
            f"p99 {sos.p99:.1f} ms", f"{len(latencies)} presses, {lost} without alert "
            f"in 10 s; p50 / p95 / p99 / max {sos.text()}",
            {"sos_lost": lost, **sos.as_dict()}),
    ]


async def _alarm(pid: int, load: Child, command: str, steady: float
                 ) -> tuple[float, dict[str, Any]]:
    """Bytes written while the load's `command` is handled, beyond the steady rate (waiting
    a few seconds after it for the commits it causes), and the load's answer."""
    loop = asyncio.get_running_loop()
    before, started = written_bytes(pid), loop.time()
    await load.send(command)
    answer = await load.read_json(120)
    await asyncio.sleep(5)  # notifications, escalation steps and cursor moves that follow
    spent = written_bytes(pid) - before - steady * (loop.time() - started)
    return max(0.0, spent), answer
