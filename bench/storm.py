"""Under a storm: alarms on time, memory under the ceiling, every reading accounted for.

`storm`: 200 temperature gates (the bulk session) publish QoS 1 passages, about 10 %
fevers, at five times the gateway's measured sustained rate for 60 s; an MQTT SOS button
(the alarm session) is pressed every 2 s. Measured: each SOS from its publish to the
retained `firing` alert at an outside subscriber; the gateway's resident memory every
100 ms against `limits.memory_mb`; after the storm, the readings the broker acknowledged
against those in the store (distinct samples: each reading has its own timestamp), the
gateway's counted drops and what the broker dropped beyond its queue bound
(`max_queued_messages`); and `gateway.overloaded` rising and clearing.

`broker-replay`: the gateway stopped while the gates publish about 100,000 QoS 1 readings
into its persistent bulk session; started again, an SOS is pressed during the drain.

`flood`: one smoke sensor publishing 2,000 messages/s for 60 s on the alarm session, 20
SOS buttons pressed in turn every 2 s, against a quiet run of the same presses; the
flooder's own smoke alarm in the middle of the flood must still alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from bench import configs, procstat
from bench.alerts import AlertWatcher, watch_alerts
from bench.children import Child, python_module
from bench.gateway_bench import Servers
from bench.hostctl import BenchError, GatewayProcess
from bench.pipeline import count_points
from bench.report import Row
from bench.stats import Summary
from gateway.core.model import AlertState

Progress = Callable[[str], None]

SUSTAINED_PER_S = 10_000  # the pipeline benchmark's sustained rate at QoS 1 with 10 % fevers
# (docs/benchmarks.md, at 855cce0: 10,000 to 11,200/s with alert p99 <= 100 ms)
SOS_EVERY_S = 2.0
RSS_EVERY_S = 0.1
MEMORY_MB = 256  # limits.memory_mb: the default
_PAGE = os.sysconf("SC_PAGE_SIZE")
SMOKE_RULES = str(Path(__file__).resolve().parent.parent / "rules" / "packs" / "smoke.yaml")


def _sos(index: int, prefix: str) -> dict[str, Any]:
    return {"id": f"sos-{index:02d}", "kind": "elder_button", "transport": "mqtt",
            "mqtt": {"topic": f"{prefix}/sos-{index:02d}", "event_key": "action",
                     "events": {"single": "press", "hold": "cancel"}}}


def _config(site: str, where: Path, srv: Servers, devices: list[dict[str, Any]],
            memory_mb: float = MEMORY_MB) -> dict[str, Any]:
    config = configs.gateway(site, where, srv.mosquitto.port, srv.store.url, devices)
    config["rule_files"] = configs.pipeline_rules()
    config["limits"] |= {"memory_mb": memory_mb}
    return config


def resident_bytes(pid: int) -> int:
    """A process's resident set size now, from /proc/PID/statm."""
    return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * _PAGE


class Resident:
    """A process's resident set size, sampled every RSS_EVERY_S from /proc/PID/statm."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.samples: list[int] = []

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.samples.append(resident_bytes(self._pid))
            await asyncio.sleep(RSS_EVERY_S)

    @property
    def peak_mib(self) -> float:
        return max(self.samples, default=0) / 2**20


@contextlib.asynccontextmanager
async def sampling(pid: int) -> AsyncIterator[Resident]:
    resident = Resident(pid)
    task = asyncio.create_task(resident.run(), name="bench.storm.rss")
    try:
        yield resident
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _press(client: aiomqtt.Client, watcher: AlertWatcher, device: str, topic: str
                 ) -> float:
    """Seconds from the SOS publish to its retained firing alert at the outside watcher."""
    since = time.time_ns() // 1_000_000 - 5
    pressed = time.monotonic()
    await client.publish(topic, b'{"action": "single"}', qos=1)
    _, arrived = await watcher.wait(device, AlertState.FIRING, since, within_s=30)
    return arrived - pressed


async def _presses(port: int, watcher: AlertWatcher, devices: list[tuple[str, str]],
                   count: int, every_s: float = SOS_EVERY_S, first: int = 0
                   ) -> tuple[list[float], int]:
    """`count` presses, one every `every_s`, each on the next device in turn from the
    `first`-th press (a device is cancelled before it is pressed again): their latencies,
    and the messages published."""
    latencies: list[float] = []
    published = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-sos-{os.getpid()}") as c:
        start = time.monotonic()
        for n in range(count):
            device, topic = devices[(first + n) % len(devices)]
            if first + n >= len(devices):  # pressed before: cancel its alert first
                await c.publish(topic, b'{"action": "hold"}', qos=1)
                published += 1
                await watcher.wait(device, AlertState.RESOLVED, 0, within_s=30)
            await asyncio.sleep(max(start + n * every_s - time.monotonic(), 0))
            latencies.append(await _press(c, watcher, device, topic))
            published += 1
    return latencies, published


@dataclass(frozen=True, slots=True)
class CpuMark:
    """A moment, and the CPU seconds the gateway (and other processes) had used by then."""

    mono: float
    cpu_s: tuple[float, ...]  # the gateway's, then each of `pids`'

    @classmethod
    async def now(cls, gw: GatewayProcess, *pids: int) -> CpuMark:
        gateway = (await gw.stats()).cpu_s
        others = [(await asyncio.to_thread(procstat.sample, pid)).cpu_s for pid in pids]
        return cls(time.monotonic(), (gateway, *others))

    async def since(self, gw: GatewayProcess, *pids: int) -> tuple[float, tuple[float, ...]]:
        """The seconds since this mark, and the CPU seconds each process used in them."""
        end = await CpuMark.now(gw, *pids)
        return end.mono - self.mono, tuple(
            b - a for a, b in zip(self.cpu_s, end.cpu_s, strict=True))


def _gates(tag: str, srv: Servers, workdir: Path, rate: float, seconds: float,
           fever_share: float = 0.1) -> Child:
    return Child(f"gates-{tag}", python_module(
        "bench.gates", "--port", str(srv.mosquitto.port), "--rate", f"{rate:g}",
        "--seconds", f"{seconds:g}", "--prefix", configs.GATE_PREFIX, "--qos", "1",
        "--fever-share", f"{fever_share:g}", "--client-id", f"bench-gates-{tag}",
        "--out", str(workdir / f"fevers-{tag}.json")), workdir)


async def _drained(gw: GatewayProcess, settle_s: float = 3.0, within_s: float = 600.0
                   ) -> dict[str, int]:
    """Wait until the gateway takes in nothing more and its sinks are done; its counters."""
    deadline = time.monotonic() + within_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        stats = await gw.stats()
        taken = stats.counters["ingress_messages"]
        if taken != last:
            last, since = taken, time.monotonic()
        elif time.monotonic() - since >= settle_s and stats.drained:
            return stats.counters
        await asyncio.sleep(0.5)
    raise BenchError(f"the gateway did not drain within {within_s:g} s")


def _overloaded(watcher: AlertWatcher) -> list[tuple[str, float]]:
    """The gateway.overloaded transitions the watcher saw: state, arrival."""
    queue = watcher.queue("gateway")
    seen = []
    while not queue.empty():
        alert, arrived = queue.get_nowait()
        if alert.rule == "gateway.overloaded":
            seen.append((alert.state.value, arrived))
    return seen


# -- storm ----------------------------------------------------------------------------------


async def storm(srv: Servers, workdir: Path, progress: Progress, *,
                rate: float = 5 * SUSTAINED_PER_S, seconds: float = 60.0,
                memory_mb: float = MEMORY_MB) -> list[Row]:
    site = "storm"
    where = workdir / "gateway-storm"
    sos = [_sos(i, "bench/storm") for i in range(40)]
    config = _config(site, where, srv, [configs.temp_gate(i) for i in range(200)] + sos,
                     memory_mb)
    pairs = [(str(d["id"]), str(d["mqtt"]["topic"])) for d in sos]
    since_ms = time.time_ns() // 1_000_000 - 1000
    progress(f"storm: 200 gates at {rate:,.0f}/s QoS 1 for {seconds:g} s, an SOS every "
             f"{SOS_EVERY_S:g} s")
    async with GatewayProcess("gateway-storm", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, site) as watcher, \
            sampling(gw.pid) as resident, _gates("storm", srv, workdir, rate, seconds) as gates:
        await gates.read_json(30)
        started = time.monotonic()
        await gates.send("go")
        latencies, sos_messages = await _presses(srv.mosquitto.port, watcher, pairs,
                                                 int(seconds / SOS_EVERY_S))
        sent = await gates.read_json(seconds + 120)
        storm_s = time.monotonic() - started
        counters = await _drained(gw)
        drained_s = time.monotonic() - started
        final = await gw.stats()
    stored = await asyncio.to_thread(count_points, srv.store.url,
                                     f'sc_temp_gate_body_temp_c{{site="{site}"}}', since_ms)
    taken = counters["ingress_messages"] - sos_messages
    return [_storm_row(rate, seconds, latencies, resident, sent, counters, taken, stored,
                       storm_s, drained_s, _overloaded(watcher), started, final.hwm_kib,
                       memory_mb)]


def _storm_row(rate: float, seconds: float, latencies: list[float], resident: Resident,
               sent: dict[str, Any], counters: dict[str, int], taken: int, stored: int,
               storm_s: float, drained_s: float, overloaded: list[tuple[str, float]],
               started: float, hwm_kib: int, memory_mb: float) -> Row:
    sos = Summary.of_seconds(latencies)
    presses = len(latencies)
    acked = int(sent.get("acked", 0))
    counted = counters["dropped"]
    broker_dropped = max(acked - taken, 0)
    unaccounted = taken - counted - stored
    ceiling = memory_mb * 2**20
    over = sum(1 for s in resident.samples if s > ceiling)
    turns = ", ".join(f"{state} at {arrived - started:.1f} s" for state, arrived in overloaded)
    data: dict[str, float | int | str] = {
            "rate_per_s": rate, "achieved_per_s": float(sent.get("achieved_per_s", 0)),
            "seconds": seconds, **sos.as_dict(), "sent": int(sent.get("sent", 0)),
            "acked": acked,
            "taken": taken, "stored": stored, "gateway_dropped": counted,
            "broker_dropped": broker_dropped, "unaccounted": unaccounted,
            "rss_peak_mib": resident.peak_mib, "rss_samples": len(resident.samples),
            "rss_over_ceiling": over, "vmhwm_mib": hwm_kib / 1024,
            "ceiling_mib": memory_mb, "storm_s": storm_s, "drained_s": drained_s,
            "memory_tight": counters.get("memory_tight", 0),
            "overloaded": turns}
    return Row(
        "storm", f"200 gates at {rate:,.0f}/s QoS 1 for {seconds:g} s (achieved "
        f"{float(sent.get('achieved_per_s', 0)):,.0f}/s), SOS every {SOS_EVERY_S:g} s",
        f"SOS {sos.p50:.0f} / {sos.p99:.0f} / {sos.max:.0f} ms",
        f"p50 / p99 / max of {presses} presses; RSS peak {resident.peak_mib:.0f} MiB of "
        f"{memory_mb:g} ({len(resident.samples)} samples, {over} over, tight mode entered "
        f"{counters.get('memory_tight', 0)} time(s)); {acked:,} acked by the "
        f"broker, {taken:,} taken, {stored:,} stored once, {counted:,} dropped by the "
        f"gateway (counted), {broker_dropped:,} dropped by the broker beyond its queue, "
        f"{unaccounted:,} unaccounted; drained {drained_s:.0f} s after the start; "
        f"gateway.overloaded: {turns or 'not raised'}",
        data)


# -- replay of the broker's queue -----------------------------------------------------------


REPLAY_RATE = 10_000.0  # readings a second into the stopped gateway's session, by default


async def broker_replay(srv: Servers, workdir: Path, progress: Progress, *,
                        queued: int = 100_000, rate: float = REPLAY_RATE) -> list[Row]:
    site = "breplay"
    where = workdir / "gateway-broker-replay"
    sos = [_sos(i, "bench/breplay") for i in range(3)]
    config = _config(site, where, srv, [configs.temp_gate(i) for i in range(200)] + sos)
    pairs = [(str(d["id"]), str(d["mqtt"]["topic"])) for d in sos]
    since_ms = time.time_ns() // 1_000_000 - 1000
    async with GatewayProcess("gateway-broker-replay", config, where):
        pass  # its sessions made and subscribed, then it stops
    progress(f"broker replay: gateway stopped; {queued:,} readings into its session over "
             f"{queued / rate:,.0f} s")
    async with _gates("breplay", srv, workdir, rate, queued / rate) as gates:
        await gates.read_json(30)
        await gates.send("go")
        sent = await gates.read_json(queued / rate + 120)
    progress("broker replay: gateway started; an SOS during the drain")
    async with watch_alerts(srv.mosquitto.port, site) as watcher:
        started = time.monotonic()
        async with GatewayProcess("gateway-broker-replay", config, where) as gw, \
                sampling(gw.pid) as resident:
            latencies, sos_messages = await _presses(srv.mosquitto.port, watcher, pairs, 3,
                                                     every_s=1.0)
            during = (await gw.stats()).counters["ingress_messages"]
            counters = await _drained(gw)
            drained_s = time.monotonic() - started
        overloaded = _overloaded(watcher)
    stored = await asyncio.to_thread(count_points, srv.store.url,
                                     f'sc_temp_gate_body_temp_c{{site="{site}"}}', since_ms)
    sos_summary = Summary.of_seconds(latencies)
    acked = int(sent.get("acked", 0))
    taken = counters["ingress_messages"] - sos_messages
    turns = ", ".join(f"{s} at {a - started:.1f} s" for s, a in overloaded)
    data: dict[str, float | int | str] = {
        "queued": acked, "taken": taken, "stored": stored, **sos_summary.as_dict(),
        "taken_when_sos_done": during, "drained_s": drained_s,
        "gateway_dropped": counters["dropped"], "rss_peak_mib": resident.peak_mib,
        "overloaded": turns, "stopped_s": queued / rate}
    return [Row(
        "broker-replay", f"{acked:,} QoS 1 readings queued by the broker while the gateway "
        f"was stopped ({queued / rate:,.0f} s), SOS during the drain",
        f"SOS {sos_summary.p50:.0f} / {sos_summary.max:.0f} ms",
        f"p50 / max of {len(latencies)} presses, the last when {during:,} readings were "
        f"taken; {taken:,} taken, {stored:,} stored once, {counters['dropped']:,} dropped "
        f"(counted); drained in {drained_s:.1f} s; RSS peak {resident.peak_mib:.0f} MiB; "
        f"gateway.overloaded: {turns or 'not raised'}",
        data)]


# -- one device flooding --------------------------------------------------------------------

SEGMENT_S = 10.0  # the flood is on and off in turns of this long, presses in both
FLOOD_SOS_EVERY_S = 0.5  # 19 presses a turn: over 100 on each side for a p99


async def flood(srv: Servers, workdir: Path, progress: Progress, *, rate: float = 2000.0,
                seconds: float = 60.0) -> list[Row]:
    """One gateway; the flood (a publisher process of its own) on for SEGMENT_S, off for
    SEGMENT_S, until it has been on for `seconds`: presses in both turns, so that the
    quiet and the flooded figures share the machine's load of the same minutes. A turn of
    presses before the first, without the flood, is not counted: the first alarms after a
    start are slow with or without a flood."""
    site = "flood"
    sos = [_sos(i, "bench/flood") for i in range(20)]
    smoke = {"id": "smoke-flood", "kind": "smoke", "transport": "mqtt",
             "mqtt": {"topic": "bench/flood/smoke", "event_key": "alarm",
                      "events": {"true": "alarm", "false": "alarm_cleared"},
                      "readings": ["temperature_c", "obscuration_pct_ft", "battery_pct"]}}
    pairs = [(str(d["id"]), str(d["mqtt"]["topic"])) for d in sos]
    per_turn = int(SEGMENT_S / FLOOD_SOS_EVERY_S)
    turns = max(int(seconds / SEGMENT_S), 1)
    where = workdir / "gateway-flood"
    config = _config(site, where, srv, [*sos, smoke])
    config["limits"] = {"memory_mb": MEMORY_MB}  # the default device_rate_hz (20/s)
    config["rule_files"] += [SMOKE_RULES]
    quiet: list[float] = []
    noisy: list[float] = []
    flooded = 0
    smoke_s: float | None = None
    cpu_on: list[tuple[float, float]] = []  # the gateway's CPU seconds, and the seconds
    cpu_off: list[tuple[float, float]] = []  # of the presses of each turn
    progress(f"flood: one device at {rate:,.0f}/s on and off every {SEGMENT_S:g} s, "
             f"{turns} turns, an SOS every {FLOOD_SOS_EVERY_S:g} s")
    async with GatewayProcess("gateway-flood", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, site) as watcher:
        # the first alarms after a start are slower than the later ones, on an idle machine
        # and with no flood: reported apart, counted on neither side
        warm_up, _ = await _presses(srv.mosquitto.port, watcher, pairs, per_turn - 1,
                                    FLOOD_SOS_EVERY_S)
        pressed = per_turn - 1
        for turn in range(turns):
            async with Child(f"flooder-{turn}", python_module(
                    "bench.publisher", "--port", str(srv.mosquitto.port), "--topics",
                    "bench/flood/smoke", "--count", str(int(rate * SEGMENT_S)), "--rate",
                    f"{rate:g}"), workdir) as flooder:
                await asyncio.sleep(0.5)  # the flood under way
                if turn == turns // 2:  # the flooder's own alarm, in the flood
                    smoke_s = await _smoke_alarm(srv.mosquitto.port, watcher)
                mark = await CpuMark.now(gw)
                got, _ = await _presses(srv.mosquitto.port, watcher, pairs, per_turn - 1,
                                        FLOOD_SOS_EVERY_S, first=pressed)
                span, (cpu,) = await mark.since(gw)
                cpu_on.append((cpu, span))
                noisy += got
                pressed += per_turn - 1
                flooded += int((await flooder.read_json(SEGMENT_S + 60))["sent"])
            mark = await CpuMark.now(gw)
            got, _ = await _presses(srv.mosquitto.port, watcher, pairs, per_turn - 1,
                                    FLOOD_SOS_EVERY_S, first=pressed)
            span, (cpu,) = await mark.since(gw)
            cpu_off.append((cpu, span))
            quiet += got
            pressed += per_turn - 1
        counters = (await gw.stats()).counters
    q, f = Summary.of_seconds(quiet), Summary.of_seconds(noisy)
    w = Summary.of_seconds(warm_up)
    gw_on, gw_off = (sum(c for c, _ in t) / sum(s for _, s in t) for t in (cpu_on, cpu_off))
    throttled = counters.get("throttled", 0)
    data: dict[str, float | int | str] = {
        **{f"quiet_{k}": v for k, v in q.as_dict().items()},
        **{f"flood_{k}": v for k, v in f.as_dict().items()}, "flooded": flooded,
        "throttled": throttled, "smoke_alarm_ms": -1 if smoke_s is None else smoke_s * 1000,
        "p50_ratio": f.p50 / q.p50, "p99_ratio": f.p99 / q.p99,
        "warm_up_p50_ms": w.p50, "warm_up_max_ms": w.max, "gateway_cpu_on": gw_on,
        "gateway_cpu_off": gw_off}
    return [Row(
        "flood", f"one device at {rate:,.0f} messages/s, {turns} x {SEGMENT_S:g} s on and "
        f"off, {len(noisy)} + {len(quiet)} SOS presses on other buttons",
        f"SOS p50 {f.p50:.1f} vs {q.p50:.1f} ms off",
        f"p99 {f.p99:.1f} vs {q.p99:.1f} ms, max {f.max:.1f} vs {q.max:.1f} (flood on vs "
        f"off, interleaved; the {len(warm_up)} presses before, not counted: p50 "
        f"{w.p50:.1f}, max {w.max:.1f}); the gateway at {gw_on * 100:.1f} vs "
        f"{gw_off * 100:.1f} % of a core; {flooded:,} sent by the flooder, {throttled:,} "
        "throttled; its "
        "smoke alarm " + ("DID NOT alert" if smoke_s is None
                          else f"alerted in {smoke_s * 1000:.0f} ms"),
        data)]


async def _smoke_alarm(port: int, watcher: AlertWatcher) -> float | None:
    """The flooder's own alarm, published on its topic: seconds to its alert, or None."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-smoke-{os.getpid()}") as c:
        since = time.time_ns() // 1_000_000 - 5
        sent = time.monotonic()
        await c.publish("bench/flood/smoke", b'{"alarm": true}', qos=1)
        try:
            _, arrived = await watcher.wait("smoke-flood", AlertState.FIRING, since,
                                            within_s=10)
        except BenchError:
            return None
        return arrived - sent
