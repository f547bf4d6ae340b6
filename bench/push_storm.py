"""The HTTP push port under a storm, a replay and a flood (the MQTT ones: bench/storm.py).

The gates are `simulators.push_fleet` in a process of its own: each gate keeps a backlog of
its passages (a tenth of them fevers) and pushes it oldest first, one push at a time, from
its own address; a 503 or 429 keeps a passage until `Retry-After`, a push without an answer
until 0.2 s later. The gateway runs in a process of its own (bench.host).

`push-storm`: 200 gates at 25 passages/s each (5,000/s offered, past what one gateway
process takes) for 60 s while 1,000 connections are held against the port (idle, or a
request head that never ends, each opened again when closed); a door controller is forced
open every 2 s. Measured: each forced door from its push to its firing alert at an outside
subscriber; the gateway's resident memory every 100 ms against `limits.memory_mb`; after the
drain, every passage a gate had answered 2xx against the store (each passage carries its
number), and the 503/429 the gates were told against the gateway's counters.

`push-replay`: the gateway stopped while 200 gates pass 10 people a second for 30 s and
keep every passage; started again, the gates push their 60,000 passages, and a door is
forced open three times during the drain.

`push-flood`: one gate pushing 2,000 requests/s (16 connections, deaf to 429) in turns of
10 s on and 10 s off, until it has been on for 60 s, beside 50 gates passing 2 people a
second throughout; a door forced open every second in both kinds of turn; the flooding
gate's own fever in a turn of the flood; the gateway's and the fleet's CPU per turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import configs
from bench.alerts import AlertWatcher, watch_alerts
from bench.gateway_bench import Servers
from bench.hostctl import REPO, BenchError, GatewayProcess
from bench.report import Row
from bench.stats import Summary
from bench.storm import MEMORY_MB, CpuMark, Resident, sampling
from gateway.core.model import AlertState
from gateway.ops.private_servers import free_port
from gateway.ops.store_query import export

Progress = Callable[[str], None]

TOKEN = "gate-token-{n:04d}-0123456789abcdef"
DOOR_TOKEN = "door-token-{n:04d}-0123456789abcdef"
ALARM_EVERY_S = 2.0


def _config(site: str, where: Path, srv: Servers, port: int, gates: int, doors: int,
            device_rate_hz: float) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": f"gate-{n}", "kind": "temp_gate", "transport": "http",
         "profile": "http-temp-gate", "http": {"token": TOKEN.format(n=n)}}
        for n in range(1, gates + 1)]
    devices += [{"id": f"door-{n}", "kind": "access", "transport": "http",
                 "profile": "http-access-controller", "http": {"token": DOOR_TOKEN.format(n=n)}}
                for n in range(1, doors + 1)]
    config = configs.gateway(site, where, srv.mosquitto.port, srv.store.url, devices)
    config["limits"] = {"memory_mb": MEMORY_MB, "device_rate_hz": device_rate_hz}
    config["http"] = {"host": "127.0.0.1", "port": port, "header_timeout_s": 5.0}
    return config


class Fleet:
    """`python -m simulators.push_fleet`: JSON lines in and out."""

    def __init__(self, port: int, workdir: Path, tag: str, **options: object) -> None:
        self.ledger_path = workdir / f"push-ledger-{tag}.json"
        self.log_path = workdir / f"push-fleet-{tag}.log"
        self._argv = [sys.executable, "-m", "simulators.push_fleet",
                      "--url", f"http://127.0.0.1:{port}", "--out", str(self.ledger_path),
                      "--token-template", TOKEN]
        for name, value in options.items():
            self._argv += [f"--{name.replace('_', '-')}", str(value)]
        self._proc: asyncio.subprocess.Process | None = None
        self._kept: list[dict[str, Any]] = []

    async def __aenter__(self) -> Fleet:
        log = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log, cwd=REPO, start_new_session=True)
        finally:
            log.close()
        if not (await self.read(30)).get("ready"):
            raise BenchError("the push fleet did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        if self._proc is not None:
            await self._proc.wait()

    async def read(self, within_s: float) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), within_s)
        if not line:
            raise BenchError(f"the push fleet ended; see {self.log_path}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def expect(self, key: str, within_s: float) -> dict[str, Any]:
        """The next line holding `key`, those before it kept for later."""
        for k, line in enumerate(self._kept):
            if key in line:
                return self._kept.pop(k)
        deadline = time.monotonic() + within_s
        while key not in (line := await self.read(max(deadline - time.monotonic(), 0.01))):
            self._kept.append(line)
        return line

    async def go(self) -> None:
        await self.say("go")

    async def say(self, line: str) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{line}\n".encode())
        await self._proc.stdin.drain()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def ledger(self) -> dict[str, tuple[set[int], set[int]]]:
        data = json.loads(self.ledger_path.read_text())
        return {d: (set(e["taken"]), set(e["uncertain"])) for d, e in data.items()}


@contextlib.asynccontextmanager
async def _doors(port: int) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}",
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def _force(session: aiohttp.ClientSession, watcher: AlertWatcher, n: int
                 ) -> tuple[float, float]:
    """Door n forced open (a new connection, as a controller opens one per push; given
    again when there is no answer): seconds to its 200 and to its firing alert."""
    since = time.time_ns() // 1_000_000 - 5
    body = json.dumps({"event": {"code": 20}, "door_open": 1}).encode()
    headers = {"Authorization": f"Bearer {DOOR_TOKEN.format(n=n)}",
               "Content-Type": "application/json", "Connection": "close"}
    pushed = time.monotonic()
    while True:
        try:
            async with session.post(f"/push/door-{n}", data=body, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    break
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    answered = time.monotonic() - pushed
    _, arrived = await watcher.wait(f"door-{n}", AlertState.FIRING, since, within_s=30)
    return answered, arrived - pushed


async def _forced_every(session: aiohttp.ClientSession, watcher: AlertWatcher, count: int,
                        first: int = 1, every_s: float = ALARM_EVERY_S
                        ) -> list[tuple[float, float]]:
    out = []
    start = time.monotonic()
    for k in range(count):
        await asyncio.sleep(max(start + k * every_s - time.monotonic(), 0))
        out.append(await _force(session, watcher, first + k))
    return out


def _stored(store_url: str, site: str) -> dict[str, Counter[int]]:
    out: dict[str, Counter[int]] = {}
    for series in export(store_url, f'sc_temp_gate_passage_count{{site="{site}"}}',
                         timeout=120):
        out.setdefault(series.labels["device"], Counter()).update(
            round(v) for v in series.values)
    return out


def _account(ledger: dict[str, tuple[set[int], set[int]]], stored: dict[str, Counter[int]]
             ) -> dict[str, int]:
    taken = missing = twice = unknown = distinct = 0
    for device, (took, unanswered) in ledger.items():
        in_store = stored.get(device, Counter())
        taken += len(took)
        distinct += len(in_store)
        missing += len(took - set(in_store))
        twice += sum(1 for copies in in_store.values() if copies > 1)
        unknown += sum(1 for n in in_store if n not in took and n not in unanswered)
    return {"taken": taken, "stored": distinct, "missing": missing, "twice": twice,
            "unknown": unknown}


async def _settled(gw: GatewayProcess, srv: Servers, site: str, fleet: Fleet
                   ) -> tuple[dict[str, int], dict[str, int]]:
    """Once the gateway delivered everything: the store's account, the counters."""
    deadline = time.monotonic() + 300
    while not (stats := await gw.stats()).drained:
        if time.monotonic() > deadline:
            raise BenchError("the gateway did not drain within 300 s")
        await asyncio.sleep(0.5)
    ledger = await asyncio.to_thread(fleet.ledger)
    account: dict[str, int] = {}
    for _ in range(30):  # the store makes the last writes searchable within seconds
        account = _account(ledger, await asyncio.to_thread(_stored, srv.store.url, site))
        if not account["missing"]:
            break
        await asyncio.sleep(1.0)
    return account, stats.counters


def _ms(values: list[float]) -> Summary:
    return Summary.of_seconds(values)


# -- storm ----------------------------------------------------------------------------------


async def push_storm(srv: Servers, workdir: Path, progress: Progress, *, gates: int = 200,
                     rate: float = 25.0, seconds: float = 60.0, connections: int = 1000
                     ) -> list[Row]:
    site = "pstorm"
    port = free_port()
    alarms = int(seconds / ALARM_EVERY_S)
    where = workdir / "gateway-push-storm"
    config = _config(site, where, srv, port, gates, alarms, device_rate_hz=2 * rate)
    progress(f"push storm: {gates} gates at {rate:g}/s each ({gates * rate:,.0f}/s) for "
             f"{seconds:g} s through {connections:,} connections, a forced door every "
             f"{ALARM_EVERY_S:g} s")
    async with GatewayProcess("gateway-push-storm", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, site) as watcher, \
            sampling(gw.pid) as resident, _doors(port) as doors, \
            Fleet(port, workdir, "storm", gates=gates, rate=rate, seconds=seconds,
                  flood=connections, retry_scale=1.0) as fleet:
        before = await gw.stats()
        await fleet.go()
        started_at = await fleet.read(60)
        started = time.monotonic()
        forced = await _forced_every(doors, watcher, alarms)
        produced = await fleet.read(seconds + 120)
        storm_s = time.monotonic() - started
        during = await gw.stats()
        drained = await fleet.read(900)
        drained_s = time.monotonic() - started
        account, counters = await _settled(gw, srv, site, fleet)
    return [_storm_row(gates, rate, seconds, connections, forced, resident, started_at,
                       produced, drained, account, counters, storm_s, drained_s,
                       (during.cpu_s - before.cpu_s) / storm_s)]


def _storm_row(gates: int, rate: float, seconds: float, connections: int,
               forced: list[tuple[float, float]], resident: Resident, started: dict[str, Any],
               produced: dict[str, Any], drained: dict[str, Any], account: dict[str, int],
               counters: dict[str, int], storm_s: float, drained_s: float, cpu: float) -> Row:
    alerted = _ms([a for _, a in forced])
    answered = _ms([a for a, _ in forced])
    over = sum(1 for s in resident.samples if s > MEMORY_MB * 2**20)
    refused_by_gateway = counters["http_pushes_busy"] + counters["throttled"]
    data: dict[str, float | int | str] = {
        "offered_per_s": gates * rate, **alerted.as_dict(), "answered_p99_ms": answered.p99,
        "produced": drained["produced"], "taken": account["taken"],
        "stored": account["stored"], "missing": account["missing"],
        "twice": account["twice"], "unknown": account["unknown"],
        "backlog_at_end": produced["backlog"], "refused_told": drained["refused"],
        "refused_counted": refused_by_gateway, "busy_slots": counters["http_busy_slots"],
        "busy_downstream": counters["http_busy_downstream"],
        "failed": drained["failed"], "uncertain": drained["uncertain"],
        "dropped": counters["dropped_store"], "rss_peak_mib": resident.peak_mib,
        "rss_over_ceiling": over, "gateway_cpu": cpu, "storm_s": storm_s,
        "drained_s": drained_s, "flood_open": started["flood_open"],
        "flood_connections": produced["flood_opened"],
        "closed": counters["http_connections_closed"],
        "conn_refused": counters["http_connections_refused"],
        "push_p99_ms": drained.get("push_p99_ms", 0.0)}
    taken_during = drained["produced"] - produced["backlog"]
    data["taken_per_s_during"] = taken_during / storm_s
    return Row(
        "push-storm", f"{gates} gates at {gates * rate:,.0f} passages/s for {seconds:g} s "
        f"through {connections:,} connections, a forced door every {ALARM_EVERY_S:g} s",
        f"door {alerted.p50:.0f} / {alerted.p99:.0f} / {alerted.max:.0f} ms",
        f"p50 / p99 / max of {len(forced)} forced doors to their alert (to their 200: p99 "
        f"{answered.p99:.0f} ms); {taken_during / storm_s:,.0f} passages/s taken during "
        f"the storm ({cpu * 100:.0f} % of a core), {produced['backlog']:,} left in the "
        f"gates at its end, drained {drained_s:.0f} s after its start; RSS peak "
        f"{resident.peak_mib:.0f} MiB of {MEMORY_MB} ({over} samples over); "
        f"{account['taken']:,} answered 2xx, {account['stored']:,} stored once, "
        f"{account['missing']:,} missing, {account['twice']:,} twice; 503/429 told "
        f"{drained['refused']:,}, counted {refused_by_gateway:,} (slots "
        f"{counters['http_busy_slots']:,}, downstream {counters['http_busy_downstream']:,}, "
        f"throttled {counters['throttled']:,}); {drained['failed']:,} pushes without an "
        f"answer; {produced['flood_opened']:,} flood connections",
        data)


# -- replay -------------------------------------------------------------------------------


async def push_replay(srv: Servers, workdir: Path, progress: Progress, *, gates: int = 200,
                      rate: float = 10.0, seconds: float = 30.0) -> list[Row]:
    site = "preplay"
    port = free_port()
    where = workdir / "gateway-push-replay"
    config = _config(site, where, srv, port, gates, 3, device_rate_hz=0)
    async with GatewayProcess("gateway-push-replay", config, where):
        pass  # it ran, and stopped
    progress(f"push replay: gateway stopped; {gates} gates pass {gates * rate:,.0f} people "
             f"a second for {seconds:g} s and keep them")
    async with Fleet(port, workdir, "replay", gates=gates, rate=rate, seconds=seconds,
                     retry_s=0.5) as fleet, watch_alerts(srv.mosquitto.port, site) as watcher:
        await fleet.go()
        await fleet.read(60)
        produced = await fleet.read(seconds + 120)
        progress(f"push replay: {produced['backlog']:,} passages kept; gateway started, "
                 "doors forced during the drain")
        started = time.monotonic()
        async with GatewayProcess("gateway-push-replay", config, where) as gw, \
                sampling(gw.pid) as resident, _doors(port) as doors:
            await asyncio.sleep(1.0)
            forced = await _forced_every(doors, watcher, 3, every_s=1.0)
            taken_at_alarms = (await gw.stats()).counters["http_pushes"]
            drained = await fleet.read(900)
            drained_s = time.monotonic() - started
            account, counters = await _settled(gw, srv, site, fleet)
    alerted = _ms([a for _, a in forced])
    data: dict[str, float | int | str] = {
        "queued": produced["backlog"], **alerted.as_dict(), "drained_s": drained_s,
        "taken_when_alarms_done": taken_at_alarms, **account,
        "dropped": counters["dropped_store"], "rss_peak_mib": resident.peak_mib,
        "failed": drained["failed"]}
    return [Row(
        "push-replay", f"{produced['backlog']:,} passages kept by {gates} gates while the "
        "gateway was stopped, doors forced during the drain",
        f"door {alerted.p50:.0f} / {alerted.max:.0f} ms",
        f"p50 / max of {len(forced)} forced doors to their alert, the last when "
        f"{taken_at_alarms:,} pushes were taken; drained in {drained_s:.1f} s; "
        f"{account['taken']:,} answered 2xx, {account['stored']:,} stored once, "
        f"{account['missing']:,} missing, {account['twice']:,} twice; RSS peak "
        f"{resident.peak_mib:.0f} MiB", data)]


# -- one device flooding --------------------------------------------------------------------

SEGMENT_S = 10.0  # the flooder pushes and rests in turns of this long, doors forced in both
DOOR_EVERY_S = 1.0
SETTLE_S = 0.5  # from the start of a turn to its first door


async def _shares_since(mark: CpuMark, gw: GatewayProcess, fleet: Fleet
                        ) -> tuple[float, float]:
    """The gateway's and the fleet's share of a core since `mark`."""
    span, (gateway, fleet_cpu) = await mark.since(gw, fleet.pid)
    return gateway / span, fleet_cpu / span


async def push_flood(srv: Servers, workdir: Path, progress: Progress, *,
                     rate: float = 2000.0, seconds: float = 60.0, gates: int = 50,
                     hold_s: float = 1.0) -> list[Row]:
    """The 50 gates push throughout; the flooder on for SEGMENT_S, off for SEGMENT_S, until
    it has been on for `seconds`; doors forced in both kinds of turn, so that the figures
    with and without the flood share the gates' load and the machine's minutes. A turn of
    doors before the first, without the flood, is not counted: the first doors after a
    start are slow with or without a flood."""
    site = "pflood"
    port = free_port()
    turns = max(int(seconds / SEGMENT_S), 1)
    per_turn = int((SEGMENT_S - 2 * SETTLE_S) / DOOR_EVERY_S)
    where = workdir / "gateway-push-flood"
    config = _config(site, where, srv, port, gates + 1, (2 * turns + 1) * per_turn,
                     device_rate_hz=20.0)
    config["http"]["throttled_hold_s"] = hold_s
    flooder = f"gate-{gates + 1}"
    gates_s = 2 * turns * SEGMENT_S + 10.0  # the gates pass people through every turn
    on: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    cpu_on: list[tuple[float, float]] = []
    cpu_off: list[tuple[float, float]] = []
    per_s: list[float] = []
    fever: float | None = None
    progress(f"push flood: {flooder} at {rate:,.0f} requests/s, {turns} x {SEGMENT_S:g} s on "
             f"and off beside {gates} gates pushing throughout (429 held {hold_s:g} s); a "
             f"forced door every {DOOR_EVERY_S:g} s")
    async with GatewayProcess("gateway-push-flood", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, site) as watcher, _doors(port) as doors, \
            Fleet(port, workdir, "flood", gates=gates, rate=2.0, seconds=gates_s,
                  flooder=flooder, flooder_rate=rate, flood_lead_s=0) as fleet:
        await fleet.go()
        await fleet.expect("started", 60)
        await asyncio.sleep(2.0)  # the gates under way
        # the first doors after a start take 10-30 ms to their alert instead of 4-8, on an
        # idle machine and with no flood: reported apart, counted on neither side
        warm_up = await _forced_every(doors, watcher, per_turn, first=2 * turns * per_turn + 1,
                                      every_s=DOOR_EVERY_S)
        pressed = 0
        for turn in range(turns):
            mark = await CpuMark.now(gw, fleet.pid)
            await fleet.say(f"flood {SEGMENT_S:g}")
            await asyncio.sleep(SETTLE_S)
            if turn == turns // 2:  # the flooder's own fever, among its flood
                fever = await _fever(port, flooder, watcher)
            on += await _forced_every(doors, watcher, per_turn, first=pressed + 1,
                                      every_s=DOOR_EVERY_S)
            pressed += per_turn
            per_s.append(float((await fleet.expect("flooded", SEGMENT_S + 60))["per_s"]))
            cpu_on.append(await _shares_since(mark, gw, fleet))  # to its last held answer
            mark = await CpuMark.now(gw, fleet.pid)
            await asyncio.sleep(SETTLE_S)
            off += await _forced_every(doors, watcher, per_turn, first=pressed + 1,
                                       every_s=DOOR_EVERY_S)
            pressed += per_turn
            await asyncio.sleep(max(mark.mono + SEGMENT_S - time.monotonic(), 0))
            cpu_off.append(await _shares_since(mark, gw, fleet))
        produced = await fleet.expect("produced", gates_s + 120)
        drained = await fleet.expect("drained", 300)
        account, counters = await _settled(gw, srv, site, fleet)
    return [_flood_row(rate, turns, gates, hold_s, on, off, per_s, cpu_on, cpu_off, fever,
                       produced, drained, account, counters, warm_up)]


def _flood_row(rate: float, turns: int, gates: int, hold_s: float,
               on: list[tuple[float, float]], off: list[tuple[float, float]],
               per_s: list[float], cpu_on: list[tuple[float, float]],
               cpu_off: list[tuple[float, float]], fever: float | None,
               produced: dict[str, Any], drained: dict[str, Any], account: dict[str, int],
               counters: dict[str, int], warm_up: list[tuple[float, float]]) -> Row:
    f, q = _ms([a for _, a in on]), _ms([a for _, a in off])
    w = _ms([a for _, a in warm_up])
    f200, q200 = _ms([a for a, _ in on]), _ms([a for a, _ in off])
    per_turn = len(on) // turns
    answers = produced["flooder_answers"]
    throttled = counters["throttled"]
    held = counters.get("throttled_held", 0)
    gw_on, fleet_on = (sum(c[i] for c in cpu_on) / len(cpu_on) for i in (0, 1))
    gw_off, fleet_off = (sum(c[i] for c in cpu_off) / len(cpu_off) for i in (0, 1))
    flood_per_s = sum(per_s) / len(per_s)
    data: dict[str, float | int | str] = {
        **{f"quiet_{k}": v for k, v in q.as_dict().items()},
        **{f"flood_{k}": v for k, v in f.as_dict().items()},
        "p50_ratio": f.p50 / q.p50, "p99_ratio": f.p99 / q.p99, "hold_s": hold_s,
        "flood_answered_p50_ms": f200.p50, "quiet_answered_p50_ms": q200.p50,
        "flood_answered_p99_ms": f200.p99, "quiet_answered_p99_ms": q200.p99,
        "flood_turn_p50_ms": _turn_p50s(on, per_turn),
        "quiet_turn_p50_ms": _turn_p50s(off, per_turn),
        "warm_up_p50_ms": w.p50, "warm_up_max_ms": w.max,
        "gateway_cpu_turns": " ".join(f"{a * 100:.1f}/{b * 100:.1f}"
                                      for (a, _), (b, _) in zip(cpu_on, cpu_off, strict=True)),
        "turns": turns, "segment_s": SEGMENT_S,
        "flooder_sent": produced["flooder_sent"], "flooder_per_s": flood_per_s,
        "flooder_taken": int(answers.get("202", 0)), "throttled": throttled,
        "flooder_429": int(answers.get("429", 0)), "throttled_held": held,
        "flooder_unanswered": int(answers.get("0", 0)),
        "fever_ms": -1.0 if fever is None else fever * 1000,
        "gateway_cpu_on": gw_on, "gateway_cpu_off": gw_off, "fleet_cpu_on": fleet_on,
        "fleet_cpu_off": fleet_off, "gates_failed": drained["failed"], **account}
    return Row(
        "push-flood", f"one gate offering {rate:,.0f} requests/s, {turns} x {SEGMENT_S:g} s "
        f"on and off, beside {gates} gates pushing throughout (429 held {hold_s:g} s); "
        f"{len(on)} + {len(off)} forced doors",
        f"door p50 {f.p50:.1f} vs {q.p50:.1f} ms off",
        f"p99 {f.p99:.1f} vs {q.p99:.1f} ms, max {f.max:.1f} vs {q.max:.1f} (flood on vs "
        f"off, interleaved; p50 x{f.p50 / q.p50:.2f}, p99 x{f.p99 / q.p99:.2f}; to "
        f"their 200: p50 {f200.p50:.1f} vs {q200.p50:.1f} ms; p50 turn by turn: "
        f"{data['flood_turn_p50_ms']} on, {data['quiet_turn_p50_ms']} off; the "
        f"{len(warm_up)} doors before, not counted: p50 {w.p50:.1f}, max {w.max:.1f}); the "
        f"gateway at {gw_on * 100:.0f} vs {gw_off * 100:.0f} % of a core, the fleet at "
        f"{fleet_on * 100:.0f} vs {fleet_off * 100:.0f} %; {produced['flooder_sent']:,} "
        f"requests from the flooder ({flood_per_s:,.0f}/s while on), "
        f"{int(answers.get('202', 0)):,} taken, {int(answers.get('429', 0)):,} answered "
        f"429, {throttled:,} counted throttled ({held:,} answered after the hold); its "
        "fever " + ("DID NOT alert" if fever is None else f"alerted in {fever * 1000:.0f} ms")
        + f"; the other gates: {account['taken']:,} answered 2xx, {account['stored']:,} "
        f"stored once, {account['missing']:,} missing, {account['twice']:,} twice",
        data)


def _turn_p50s(forced: list[tuple[float, float]], per_turn: int) -> str:
    """Each turn's p50 to the alert (ms), in the order of the turns."""
    return " ".join(f"{_ms([a for _, a in forced[k:k + per_turn]]).p50:.1f}"
                    for k in range(0, len(forced), per_turn))


async def _fever(port: int, device: str, watcher: AlertWatcher) -> float | None:
    """The flooding gate's own fever, pushed among its flood: seconds to its alert."""
    n = int(device.rsplit("-", 1)[1])
    body = json.dumps({"temp_x10": 386, "abnormal": 1, "mask": 1}).encode()
    headers = {"Authorization": f"Bearer {TOKEN.format(n=n)}",
               "Content-Type": "application/json"}
    since = time.time_ns() // 1_000_000 - 5
    pushed = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
            session.post(f"http://127.0.0.1:{port}/push/{device}", data=body,
                         headers=headers) as answer:
        await answer.read()
        if answer.status != 200:
            return None
    try:
        _, arrived = await watcher.wait(device, AlertState.FIRING, since, within_s=10)
    except BenchError:
        return None
    return arrived - pushed
