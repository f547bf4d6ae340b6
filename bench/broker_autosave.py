"""What one save of Mosquitto's persistence database costs with a compound's retained state.

    python -m bench.broker_autosave [--alerts 1000] [--devices 300] [--saves 20]

A private Mosquitto with persistence is filled with a compound's state (the retained alerts,
each device's retained status, the gateway's and a duty console's persistent sessions);
then its database is saved `--saves` times on SIGUSR1 (what the autosave timer does) and
each save is timed with strace (its new file opened, written, fsynced, renamed). An idle
spell with a 1 s autosave interval shows whether the broker saves even when nothing
changed. Prints the database size, the time and CPU of a save, and the bytes written per
day for several intervals.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.procstat import sample
from gateway.core.model import Alert, AlertState, DeviceKind, Severity, encode, new_id
from gateway.ops.private_servers import Mosquitto

SITE = "c1"
INTERVALS_S = (1, 5, 10, 30, 60)


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def fill(port: int, alerts: int, devices: int) -> list[mqtt.Client]:
    """The compound's state: retained alerts and statuses, two persistent sessions."""
    gateway = _client(port, "scgw-c1")
    gateway.subscribe([(f"sc/{SITE}/elder_button/dev{n}/raw", 1) for n in range(devices)]
                      + [(f"sc/{SITE}/alerts/+/+/ack", 1)])
    console = _client(port, "duty-console")
    console.subscribe(f"sc/{SITE}/#", 1)
    ts = int(time.time() * 1000)
    infos = []
    for n in range(alerts):
        alert = Alert(id=new_id(ts), ts=ts, rule=f"sos-{n % 7}", device=f"dev{n}",
                      kind=DeviceKind.ELDER_BUTTON, state=AlertState.FIRING,
                      severity=Severity.CRITICAL, since=ts, value=True,
                      message=f"SOS pressed at building {n % 12}, unit {n % 4}, floor {n % 20}")
        infos.append(gateway.publish(f"sc/{SITE}/alerts/{alert.rule}/{alert.device}",
                                     encode(alert), qos=1, retain=True))
    for n in range(devices):
        infos.append(gateway.publish(f"sc/{SITE}/elder_button/dev{n}/status", b"online",
                                     qos=1, retain=True))
    for info in infos:
        info.wait_for_publish(10)
    return [gateway, console]


def _db(workdir: Path) -> Path:
    return workdir / "mosquitto.db"


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return 0


def _written(pid: int) -> int:
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def timed_saves(pid: int, db: Path, saves: int, trace: Path) -> tuple[list[float], float, float]:
    """Seconds of each save (open of the new file to its rename, as strace sees them); CPU
    seconds and bytes written per save."""
    tracer = subprocess.Popen(["strace", "-ttt", "-e", "trace=openat,fsync,rename", "-o",
                               str(trace), "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached
    cpu0, bytes0 = sample(pid).cpu_s, _written(pid)
    for _ in range(saves):
        before = _inode(db)
        os.kill(pid, signal.SIGUSR1)  # the broker saves as its autosave timer would
        while _inode(db) == before:
            time.sleep(0.001)
        time.sleep(0.2)
    cpu, written = (sample(pid).cpu_s - cpu0) / saves, (_written(pid) - bytes0) / saves
    tracer.terminate()
    tracer.wait()
    durations, opened = [], 0.0
    for line in trace.read_text().splitlines():
        stamp, _, call = line.partition(" ")
        if call.startswith("openat(") and ".db.new" in call:
            opened = float(stamp)
        elif call.startswith("rename(") and opened:
            durations.append(float(stamp) - opened)
            opened = 0.0
    return durations, cpu, written


def idle_saves(workdir: Path, seconds: float) -> int:
    """Saves in `seconds` of idleness (autosave every second)."""
    db, seen, count = _db(workdir), _inode(_db(workdir)), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = _inode(db)
        if now != seen:
            seen, count = now, count + 1
        time.sleep(0.01)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        raise SystemExit("strace times the saves: install it (apt-get install strace)")
    with tempfile.TemporaryDirectory(prefix="autosave-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir, persistence=True, autosave_s=3600)
        broker.start()
        clients = fill(broker.port, args.alerts, args.devices)
        try:
            assert broker._proc is not None
            pid = broker._proc.pid
            walls, cpu, written = timed_saves(pid, _db(workdir), args.saves,
                                              workdir / "strace.txt")
            size = _db(workdir).stat().st_size
        finally:
            for client in clients:
                client.loop_stop()
                client.disconnect()
            broker.stop()
        broker = Mosquitto(workdir, broker.port, persistence=True, autosave_s=1)
        broker.start()
        try:
            idle = idle_saves(workdir, 10.0)
        finally:
            broker.stop()
    print(f"state: {args.alerts} retained alerts, {args.devices} device statuses, "
          "2 persistent sessions")
    print(f"database: {size:,} bytes; a save writes {written:,.0f} bytes (and fsyncs)")
    print(f"save time (new file opened to renamed, fsync included), {len(walls)} saves: "
          "median "
          f"{statistics.median(walls) * 1000:.1f} ms, max {max(walls) * 1000:.1f} ms; "
          f"CPU {cpu * 1000:.1f} ms per save")
    print(f"saves in 10 s idle with autosave_interval 1: {idle}")
    # Mosquitto saves once `autosave_interval` has passed in whole seconds, strictly: one
    # save per interval + 1 s (5 saves in 10 s idle at 1 s), whether anything changed or not
    print("interval  lost at a crash  saves/day  written/day  CPU/day")
    for interval in INTERVALS_S:
        period = interval + 1
        per_day = 86_400 / period
        print(f"{interval:>6} s  up to {period:>3} s{'':5}{per_day:>8,.0f}  "
              f"{per_day * written / 2**30:>8.2f} GiB  {per_day * cpu:>6.0f} s")


if __name__ == "__main__":
    main()
