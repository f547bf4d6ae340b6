"""The gateway under test, in a process of its own: `python -m bench.host CONFIG.json`.

The benchmark drives it over a pipe: one JSON request per line on stdin, one JSON answer
per line on stdout. Keeping the gateway apart from the load generators means its memory
and CPU time are its own, and the subscriber and publisher do not share its event loop.
The simulated elders live here because gpiozero's mock pins exist only in this process.

Requests: {"op": "press", "devices": [...], "hold_s": 0.05} presses those buttons at once
and answers with each release time; {"op": "backlog", "count": N, "devices": [...],
"kind": ..., "event": ...} appends N events through the gateway's intake;
{"op": "store_accepted", "device": ..., "since_ms": ...} answers when the store accepted a
firing alert point of that device; {"op": "busy", "spin_ms": 0.5} keeps the event loop
busy in turns of that length (0 stops it); {"op": "stats"};
{"op": "stop"} (or end of input) stops the gateway cleanly and answers with final stats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import resource
import sys
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from gateway.config_file import parse_config
from gateway.core.config import GatewayConfig, GpioDevice
from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.ops.allocator import settle_heap
from gateway.sinks.store_writer import Writer, writer_for
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder

COUNTERS = ("ingress_messages", "rejected", "events_accepted", "mqtt_published",
            "mqtt_publish_failed", "mqtt_disconnects", "store_points_written", "store_retries",
            "store_rejected", "handler_errors", "gpio_bounces", "task_restarts", "rule_errors",
            "throttled", "throttled_held", "shed_readings", "memory_tight", "http_pushes",
            "http_pushes_busy", "http_connections_closed", "http_connections_refused")


def process_status() -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) in KiB and the thread count, from /proc/self/status."""
    wanted = {"VmRSS": "rss_kib", "VmHWM": "hwm_kib", "Threads": "threads"}
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:  # procfs: no disk wait
        for line in status:
            key, _, value = line.partition(":")
            if key in wanted:
                out[wanted[key]] = int(value.split()[0])
    return out


_DEVICE_TAG = re.compile(r",device=([^,\s]+)")


class TimedWriter:
    """The gateway's own store writer, noting when the store accepted each firing alert point.

    Only the bookkeeping after a successful write is added; what is written, and when, is
    the gateway's doing.
    """

    def __init__(self, inner: Writer) -> None:
        self._inner = inner
        self._accepted: defaultdict[str, deque[tuple[int, float]]] = defaultdict(
            lambda: deque(maxlen=16))
        self._changed = asyncio.Event()

    @property
    def connections(self) -> int:
        return self._inner.connections

    async def write(self, lines: list[str]) -> None:
        await self._inner.write(lines)
        accepted = time.monotonic()
        for line in lines:
            if line.startswith("sc_alert,") and "state_code=1i" in line:  # a firing
                device = _DEVICE_TAG.search(line)
                if device is not None:
                    ts = int(line.rsplit(" ", 1)[1])
                    self._accepted[device.group(1)].append((ts, accepted))
        self._changed.set()

    async def close(self) -> None:
        await self._inner.close()

    async def accepted(self, device: str, since_ms: int, within_s: float) -> float:
        """When (time.monotonic()) a firing point of `device` stamped >= since_ms went in."""
        async with asyncio.timeout(within_s):
            while True:
                for ts, accepted in self._accepted[device]:
                    if ts >= since_ms:
                        return accepted
                self._changed.clear()
                await self._changed.wait()


def timed_writer(config: GatewayConfig) -> TimedWriter:
    """The writer the gateway would make itself, wrapped."""
    return TimedWriter(writer_for(config.store, os.environ))


class Host:
    def __init__(self, gateway: Gateway, writer: TimedWriter) -> None:
        self.gateway = gateway
        self.writer = writer
        self.elders = {
            d.id: SimulatedElder(gateway.pin_factory, d.gpio.pin, gateway.clock)
            for d in gateway.config.devices if isinstance(d, GpioDevice)
        }
        self._spinner: asyncio.Task[None] | None = None
        self._turns = 0

    def stats(self) -> dict[str, Any]:
        gw = self.gateway
        usage = resource.getrusage(resource.RUSAGE_SELF)
        counters = {name: gw.counters.get(name) for name in COUNTERS}
        counters["dropped_mqtt"] = gw.counters.get("dropped", sink="mqtt")
        counters["dropped_store"] = gw.counters.get("dropped", sink="store")
        counters["dropped"] = gw.counters.get("dropped")
        counters["modbus_polls"] = gw.counters.get("modbus_polls")
        counters["http_busy_slots"] = gw.counters.get("http_pushes_busy", reason="slots")
        counters["http_busy_downstream"] = gw.counters.get("http_pushes_busy",
                                                           reason="downstream")
        return {
            "mono": time.monotonic(),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "ctx_switches": usage.ru_nvcsw + usage.ru_nivcsw,
            **process_status(),
            "counters": counters,
            "journal_commits": gw.journal.commits,
            "journal_records": gw.journal.records_written,
            "last_seq": gw.journal.last_seq,
            "mqtt_cursor": gw.mqtt_sink.cursor,
            "store_cursor": gw.store_sink.cursor,
            "telemetry_pending": {c: gw.telemetry.pending(c) for c in ("mqtt", "store")},
            "telemetry_buffered": len(gw.telemetry),
            "suppressed": gw.rules.suppressed,
            "connected": gw.link.connected,
        }

    async def press(self, devices: list[str], hold_s: float) -> dict[str, Any]:
        """Press the buttons together; each release is stamped just before the pin goes up."""

        async def one(device: str) -> tuple[float, int]:
            elder = self.elders[device]
            elder.down()
            await self.gateway.clock.sleep(hold_s)
            released = (time.monotonic(), time.time_ns() // 1_000_000)
            elder.up()
            return released

        done = await asyncio.gather(*(one(d) for d in devices))
        return {"released": {d: {"mono": m, "ms": ms} for d, (m, ms) in zip(devices, done,
                                                                              strict=True)}}

    async def busy(self, spin_ms: float) -> dict[str, Any]:
        """Keep the event loop busy: a task spins `spin_ms` in Python, then yields for a
        turn, until told otherwise (0: no task). Answers with the turns the task before
        it made."""
        turns = 0
        if self._spinner is not None:
            self._spinner.cancel()
            await asyncio.wait([self._spinner])
            turns, self._spinner = self._turns, None
        self._turns = 0
        if spin_ms > 0:
            self._spinner = asyncio.create_task(self._spin(spin_ms / 1000), name="bench.busy")
        return {"turns": turns}

    async def _spin(self, seconds: float) -> None:
        while True:
            self._turns += 1
            until = time.perf_counter() + seconds
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    async def backlog(self, count: int, devices: list[str], kind: str, event: str
                      ) -> dict[str, Any]:
        """Append `count` events through the gateway's own intake, many at a time (as many
        drivers would), so that they share journal commits."""
        gateway = self.gateway
        started = time.monotonic()
        wave = 512
        for first in range(0, count, wave):
            ts = gateway.clock.now_ms()
            await asyncio.gather(*(
                gateway.event(make_event(DeviceKind(kind), devices[i % len(devices)], event,
                                         ts, {}))
                for i in range(first, min(first + wave, count))))
        return {"appended": count, "seconds": time.monotonic() - started,
                "last_seq": gateway.journal.last_seq}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "backlog":
            return await self.backlog(int(request["count"]), list(request["devices"]),
                                      str(request["kind"]), str(request["event"]))
        if op == "stats":
            return self.stats()
        if op == "press":
            return await self.press(list(request["devices"]), float(request["hold_s"]))
        if op == "busy":
            return await self.busy(float(request["spin_ms"]))
        if op == "store_accepted":
            accepted = await self.writer.accepted(str(request["device"]),
                                                  int(request["since_ms"]),
                                                  float(request.get("wait_s", 10.0)))
            return {"mono": accepted}
        raise ValueError(f"unknown op {op!r}")


async def serve(config_path: Path) -> None:
    raw = json.loads(await asyncio.to_thread(config_path.read_text, encoding="utf-8"))
    config = parse_config(raw, config_path, os.environ)
    store_writer = timed_writer(config)
    gateway = Gateway(config, writer=store_writer)
    host = Host(gateway, store_writer)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        sys.stdout)
    out = asyncio.StreamWriter(transport, protocol, None, loop)

    async def answer(body: dict[str, Any]) -> None:
        out.write(json.dumps(body).encode() + b"\n")
        await out.drain()

    run = asyncio.create_task(gateway.run(), name="bench.host.gateway")
    ready = asyncio.ensure_future(gateway.ready.wait())
    await asyncio.wait((run, ready), timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if run.done():
        run.result()  # raises what stopped it
    if not gateway.ready.is_set():
        raise RuntimeError("the gateway did not become ready in 30 s")
    # ready to receive: connected and subscribed to every device's topic
    for _ in range(300):
        if gateway.link.connected or run.done():
            break
        await asyncio.sleep(0.1)
    settle_heap()  # as `scgw run` does once started
    await answer({"ok": True, "event": "ready", "pid": os.getpid()})
    try:
        while True:
            line = asyncio.ensure_future(reader.readline())
            await asyncio.wait((line, run), return_when=asyncio.FIRST_COMPLETED)
            if run.done():
                line.cancel()
                run.result()
                raise RuntimeError("the gateway stopped by itself")
            data = line.result()
            if not data:
                break  # the benchmark went away: stop
            request = json.loads(data)
            if request.get("op") == "stop":
                break
            try:
                reply = {"ok": True, **await host.handle(request)}
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await answer(reply)
    finally:
        gateway.stop()
        await asyncio.wait_for(run, timeout=gateway.config.shutdown_timeout_s + 10)
    await answer({"ok": True, "event": "stopped", **host.stats()})
    out.close()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m bench.host CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
