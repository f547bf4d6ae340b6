"""Modbus polling: the gateway and ThingsBoard's gateway on the same 50 simulated devices.

Each device is its own Modbus TCP endpoint with ten input registers (bench.modbus_sims, a
process of its own). Both gateways poll every device every `poll_ms`; the devices count
the requests they answer, so polls are counted the same way for both, and CPU and memory
come from /proc. The gateway reads the ten contiguous registers in one request; ThingsBoard
reads each configured key with a request of its own, as its connector does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import configs
from bench.children import Child, python_module
from bench.gateway_bench import Servers
from bench.hostctl import BenchError, GatewayProcess
from bench.modbus_sims import PROFILE, PROFILES
from bench.peers.install import PeerUnavailableError, thingsboard
from bench.peers.thingsboard import REGISTERS, TELEMETRY, ThingsBoardGateway
from bench.procstat import sample
from bench.report import Row

Progress = Callable[[str], None]

MODBUS_SITE = "modbus"


@dataclass(frozen=True, slots=True)
class Polling:
    system: str
    devices: int
    poll_ms: int
    seconds: float
    requests: int
    requests_per_poll: int
    cpu_s: float
    rss_kib: int

    @property
    def polls_per_s(self) -> float:
        return self.requests / self.requests_per_poll / self.seconds

    @property
    def wanted_per_s(self) -> float:
        return self.devices * 1000 / self.poll_ms

    @property
    def cpu_percent(self) -> float:
        return self.cpu_s / self.seconds * 100

    @property
    def cpu_ms_per_1k_polls(self) -> float:
        polls = self.requests / self.requests_per_poll
        return self.cpu_s * 1000 / polls * 1000 if polls else float("nan")

    def data(self) -> dict[str, float | int | str]:
        return {"system": self.system, "devices": self.devices, "poll_ms": self.poll_ms,
                "seconds": self.seconds, "requests": self.requests,
                "requests_per_poll": self.requests_per_poll, "polls_per_s": self.polls_per_s,
                "wanted_polls_per_s": self.wanted_per_s, "cpu_percent": self.cpu_percent,
                "cpu_ms_per_1k_polls": self.cpu_ms_per_1k_polls, "rss_kib": self.rss_kib}


def gateway_config(workdir: Path, srv: Servers, ports: list[int], poll_ms: int
                   ) -> dict[str, Any]:
    buses = [{"id": f"tcp{i:02d}", "type": "tcp", "host": "127.0.0.1", "tcp_port": port}
             for i, port in enumerate(ports)]
    devices = [{"id": f"manhole-{i:02d}", "kind": "manhole", "transport": "modbus",
                "profile": PROFILE, "location": {"building": str(1 + i // 10)},
                "modbus": {"bus": f"tcp{i:02d}", "unit": 1, "poll_s": poll_ms / 1000,
                           "alarm_poll_s": poll_ms / 1000}}
               for i in range(len(ports))]
    config = configs.gateway(MODBUS_SITE, workdir, srv.mosquitto.port, srv.store.url, devices)
    config["buses"] = buses
    config["profile_dirs"] = [str(PROFILES)]
    return config


async def _requests(sims: Child) -> int:
    await sims.send("count")
    return sum(int(n) for n in (await sims.read_json(10))["requests"])


async def _measure(name: str, pid: int, sims: Child, devices: int, poll_ms: int,
                   per_poll: int, warmup_s: float, seconds: float) -> Polling:
    await asyncio.sleep(warmup_s)
    r0, p0, t0 = await _requests(sims), await asyncio.to_thread(sample, pid), time.monotonic()
    await asyncio.sleep(seconds)
    r1, p1, t1 = await _requests(sims), await asyncio.to_thread(sample, pid), time.monotonic()
    return Polling(name, devices, poll_ms, t1 - t0, r1 - r0, per_poll, p1.cpu_s - p0.cpu_s,
                   p1.rss_kib)


async def run(srv: Servers, workdir: Path, progress: Progress, *, devices: int = 50,
              poll_ms: int = 100, warmup_s: float = 5.0, seconds: float = 20.0,
              peers: bool = True) -> list[Row]:
    rows: list[Row] = []
    async with Child("modbus-sims", python_module("bench.modbus_sims", "tcp", str(devices)),
                     workdir) as sims:
        ports = [int(p) for p in (await sims.read_json(60))["ports"]]
        progress(f"modbus: the gateway polls {devices} TCP devices every {poll_ms} ms")
        where = workdir / "gateway-modbus"
        async with GatewayProcess("gateway-modbus", gateway_config(where, srv, ports, poll_ms),
                                  where) as gw:
            ours = await _measure("gateway", gw.pid, sims, devices, poll_ms, 1, warmup_s,
                                  seconds)
            stats = await gw.stats()
        trouble = {k: v for k, v in stats.counters.items()
                   if k in ("rejected", "handler_errors", "task_restarts") and v}
        rows.append(_row(ours, f"one request per poll; trouble counted: {trouble or 'none'}"))
        theirs: Polling | None = None
        if peers:
            try:
                install = await asyncio.to_thread(thingsboard, progress)
            except PeerUnavailableError as exc:
                rows.append(_skipped(f"ThingsBoard's gateway not installed: {exc}"))
            else:
                progress(f"modbus: ThingsBoard's gateway {install.version} polls the same "
                         "devices")
                theirs = await _thingsboard(install, srv, workdir, sims, ports, poll_ms,
                                            warmup_s, seconds)
                rows.append(_row(theirs, f"thingsboard-gateway {install.version}; one request "
                                         f"per register ({len(REGISTERS)} per poll)"))
        if theirs is not None:
            rows.append(Row(
                "modbus", "gateway vs ThingsBoard's gateway (ratios)",
                f"{ours.polls_per_s / theirs.polls_per_s:.2f}x polls/s, "
                f"{theirs.cpu_ms_per_1k_polls / ours.cpu_ms_per_1k_polls:.1f}x less CPU per "
                "poll",
                f"CPU {ours.cpu_percent:.1f} % vs {theirs.cpu_percent:.1f} % of a core; RSS "
                f"{ours.rss_kib / 1024:.0f} vs {theirs.rss_kib / 1024:.0f} MiB",
                {"polls_ratio": ours.polls_per_s / theirs.polls_per_s,
                 "cpu_per_poll_ratio": theirs.cpu_ms_per_1k_polls / ours.cpu_ms_per_1k_polls}))
    return rows


async def _thingsboard(install: Any, srv: Servers, workdir: Path, sims: Child,
                       ports: list[int], poll_ms: int, warmup_s: float,
                       seconds: float) -> Polling:
    listener = Child("tb-telemetry", python_module(
        "bench.listener", "--port", str(srv.mosquitto.port), "--filter", TELEMETRY,
        "--out", str(workdir / "tb-telemetry.json"), "--client-id", "bench-tb-telemetry"),
        workdir)
    async with listener, ThingsBoardGateway(install, workdir, srv.mosquitto.port, ports,
                                            poll_ms) as tb:
        await listener.read_json(30)
        deadline = time.monotonic() + 90
        while True:  # until it publishes: connected, limits received, devices polled
            if not tb.running:
                raise BenchError(f"ThingsBoard's gateway exited; see {tb.log_path}")
            await listener.send("count")
            if int((await listener.read_json(10))["received"]):
                break
            if time.monotonic() > deadline:
                raise BenchError("ThingsBoard's gateway published no telemetry in 90 s; "
                                 f"see {tb.log_path}")
            await asyncio.sleep(0.5)
        return await _measure("thingsboard-gateway", tb.pid, sims, len(ports), poll_ms,
                              len(REGISTERS), warmup_s, seconds)


def _row(p: Polling, how: str) -> Row:
    return Row("modbus", f"{p.system}: {p.devices} TCP devices x 10 registers, poll every "
                         f"{p.poll_ms} ms",
               f"{p.polls_per_s:,.0f} polls/s",
               f"of {p.wanted_per_s:,.0f} wanted; CPU {p.cpu_percent:.1f} % of a core, "
               f"{p.cpu_ms_per_1k_polls:.0f} ms per 1,000 polls; RSS {p.rss_kib / 1024:.0f} "
               f"MiB; {how}", p.data())


def _skipped(why: str) -> Row:
    return Row("modbus", "ThingsBoard's gateway", "skipped", why, {"skipped": why})
