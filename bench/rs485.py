"""RS-485 bus efficiency: how close the gateway gets to what the line itself allows.

Units on one simulated RS-485 line (bench.modbus_sims rtu, timing faithful to the baud
rate: a frame takes as long as its characters do, and a unit answers only after the
3.5-character silence that ends a request). The gateway polls them as fast as the line
allows. The theoretical maximum for the register map is one transaction per
request + 3.5 characters of silence + answer + 3.5 characters of silence, with nothing
else on the line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import configs
from bench.children import Child, python_module
from bench.gateway_bench import Servers
from bench.hostctl import GatewayProcess
from bench.modbus_sims import PROFILE, PROFILES
from bench.report import Row

Progress = Callable[[str], None]

REGISTERS = 10  # the profile's one block of input registers
REQUEST_CHARS = 8  # unit, function, address (2), count (2), CRC (2)
ANSWER_CHARS = 5 + 2 * REGISTERS  # unit, function, byte count, data, CRC (2)
SILENCE_CHARS = 3.5


def theoretical_per_s(char_s: float) -> float:
    """Transactions per second the line allows for this register map."""
    return 1 / ((REQUEST_CHARS + ANSWER_CHARS + 2 * SILENCE_CHARS) * char_s)


def gateway_config(workdir: Path, srv: Servers, port: str, units: int, baudrate: int
                   ) -> dict[str, Any]:
    devices = [{"id": f"manhole-{unit:02d}", "kind": "manhole", "transport": "modbus",
                "profile": PROFILE,
                # far shorter than the line allows: the line sets the pace
                "modbus": {"bus": "rs485", "unit": unit, "poll_s": 0.001,
                           "alarm_poll_s": 0.001}}
               for unit in range(1, units + 1)]
    config = configs.gateway("rs485", workdir, srv.mosquitto.port, srv.store.url, devices)
    config["buses"] = [{"id": "rs485", "type": "rtu", "port": port, "baudrate": baudrate}]
    config["profile_dirs"] = [str(PROFILES)]
    return config


async def _requests(sims: Child) -> int:
    await sims.send("count")
    return sum(int(n) for n in (await sims.read_json(10))["requests"])


async def run(srv: Servers, workdir: Path, progress: Progress, *, units: int = 4,
              baudrate: int = 9600, warmup_s: float = 3.0, seconds: float = 20.0) -> list[Row]:
    progress(f"RS-485: {units} units at {baudrate} baud, polled as fast as the line allows")
    async with Child("rtu-line", python_module("bench.modbus_sims", "rtu", str(units),
                                               str(baudrate)), workdir) as sims:
        line = await sims.read_json(30)
        char_s = float(line["char_s"])
        where = workdir / "gateway-rs485"
        config = gateway_config(where, srv, str(line["port"]), units, baudrate)
        async with GatewayProcess("gateway-rs485", config, where) as gw:
            await asyncio.sleep(warmup_s)
            r0, t0 = await _requests(sims), time.monotonic()
            await asyncio.sleep(seconds)
            r1, t1 = await _requests(sims), time.monotonic()
            stats = await gw.stats()
    achieved = (r1 - r0) / (t1 - t0)
    best = theoretical_per_s(char_s)
    bus_ms = 1000 / best
    rejected = stats.counters.get("rejected", 0)
    return [Row(
        "RS-485", f"{units} units x {REGISTERS} registers, {baudrate} baud 8N1, "
                  f"{t1 - t0:.0f} s",
        f"{achieved / best * 100:.1f} % of the line's maximum",
        f"{achieved:.2f} transactions/s of {best:.2f} possible ({bus_ms:.1f} ms each: "
        f"{REQUEST_CHARS}-char request, {ANSWER_CHARS}-char answer, 2 x 3.5 chars of "
        f"silence); gateway's silence between frames max(3.5 chars, inter_frame_ms 5); "
        f"{rejected} rejected",
        {"units": units, "baudrate": baudrate, "seconds": t1 - t0,
         "transactions_per_s": achieved, "theoretical_per_s": best,
         "efficiency_percent": achieved / best * 100, "rejected": rejected})]
