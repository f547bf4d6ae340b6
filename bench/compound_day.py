"""A compound's ordinary day: what the gateway costs the Pi's SD card, CPU and memory.

The gateway of the footprint benchmark (1,000 MQTT devices of the five kinds, the shipped
rules) gets the load of `bench.compound_load` for a fixed period. Measured from outside:

- bytes written to disk by the gateway process, from `/proc/PID/io` `write_bytes` (what
  reaches the block layer: the journal, its WAL, the status file, logs), extrapolated to a
  day;
- fsyncs (fsync + fdatasync) per second, counted by `strace -f -c` attached to the process
  for the same period (strace slows every system call it counts, so the CPU figure comes
  from a second period without it);
- CPU share and resident memory from /proc;
- SOS latency: an MQTT button's press published -> the retained `firing` alert received.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

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


def written_bytes(pid: int) -> int:
    """write_bytes of /proc/PID/io: what the process caused to be written to storage."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "write_bytes":
                return int(value)
    raise BenchError(f"/proc/{pid}/io has no write_bytes (no task I/O accounting?)")


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def strace_calls(summary: str) -> dict[str, int]:
    """Calls per system call from `strace -c`'s table."""
    calls: dict[str, int] = {}
    for line in summary.splitlines():
        match = _STRACE_ROW.match(line)
        if match and match.group(2) != "total":
            calls[match.group(2)] = int(match.group(1))
    return calls


async def _count_syncs(pid: int, seconds: float, workdir: Path) -> int:
    strace = shutil.which("strace")
    if strace is None:
        raise BenchError("strace is needed to count fsyncs: sudo apt-get install strace")
    out = workdir / "strace-summary.txt"
    proc = await asyncio.create_subprocess_exec(
        strace, "-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", str(out),
        "-p", str(pid), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(seconds)
    proc.send_signal(signal.SIGINT)  # detach: it writes its summary
    _, err = await proc.communicate()
    if proc.returncode not in (0, None) and not out.exists():
        raise BenchError(f"strace could not attach to the gateway: {err.decode().strip()}")
    calls = strace_calls(await asyncio.to_thread(out.read_text))
    return sum(calls.values())


async def run(srv: Servers, workdir: Path, progress: Progress, *, seconds: float = 120.0,
              count: int = 1000) -> list[Row]:
    half = seconds / 2
    progress(f"compound day: {count} devices, {seconds:g} s of a compound's load "
             "(half with strace counting fsyncs)")
    where = workdir / "gateway-compound-day"
    config = configs.gateway(SITE, where, srv.mosquitto.port, srv.store.url,
                             footprint.devices(count))
    async with GatewayProcess("gateway-compound-day", config, where) as gw, \
            Child("compound-load", python_module(
                "bench.compound_load", "--port", str(srv.mosquitto.port), "--site", SITE,
                "--devices", str(count), "--seconds", f"{seconds + 5:g}"), workdir) as load:
        await load.read_json(60)
        await load.send("go")
        await asyncio.sleep(5)  # every device has spoken once; start-up writes are behind
        bytes0, cpu0 = written_bytes(gw.pid), sample(gw.pid)
        await asyncio.sleep(half)
        cpu1 = sample(gw.pid)
        syncs = await _count_syncs(gw.pid, half, workdir)
        bytes2, cpu2 = written_bytes(gw.pid), sample(gw.pid)
        result = await load.read_json(seconds + 60)
    wall = seconds
    per_day = (bytes2 - bytes0) / wall * DAY_S
    cpu_share = (cpu1.cpu_s - cpu0.cpu_s) / half * 100
    sent = {str(k): int(v) for k, v in result["sent"].items()}
    rate = sum(sent.values()) / float(result["seconds"])
    latencies = [float(x) for x in result["sos_latencies_s"]]
    lost = sum(1 for x in latencies if x == float("inf"))
    sos = Summary.of_seconds([x for x in latencies if x != float("inf")])
    load_text = f"{rate:,.0f} msg/s ({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))})"
    return [
        Row("compound-day", f"{count} devices, {load_text}, disk writes",
            f"{per_day / 2**20:,.1f} MiB/day", f"{(bytes2 - bytes0) / 2**10:,.0f} KiB in "
            f"{wall:g} s from /proc/PID/io write_bytes",
            {"bytes_per_day": per_day, "bytes": bytes2 - bytes0, "seconds": wall,
             "messages_per_s": rate}),
        Row("compound-day", f"{count} devices, fsyncs", f"{syncs / half:.2f} /s",
            f"{syncs} fsync/fdatasync in {half:g} s (strace -f -c)",
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
