"""Simulated Modbus devices in a process of their own: `python -m bench.modbus_sims ...`.

`tcp N`: N devices, each its own Modbus TCP endpoint (unit 1) on a free loopback port, as
N networked devices are. `rtu N BAUD`: N units on one simulated RS-485 line (a pty) with
timing faithful to the baud rate. Every device is laid out by the benchmark's ten-register
manhole monitor profile, with plausible values.

It prints `{"ports": [...]}` (or `{"port": "/dev/pts/N", "char_s": ...}`) once serving; a
`count` line is answered with the requests every device has received so far; end of input
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from drivers.profile import BUILTIN, ProfileLibrary
from simulators.modbus_device import SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator

PROFILES = Path(__file__).resolve().parent / "profiles"
PROFILE = "modbus-bench-manhole"


def device(unit: int, library: ProfileLibrary) -> SimulatedDevice:
    sim = SimulatedDevice(unit, library.get(PROFILE))
    for reading, value in (("tilt_deg", 1.5 + unit % 3), ("installed_tilt_deg", 1.0),
                           ("water_level_cm", 20 + unit), ("gas_ppm", 3), ("battery_pct", 87)):
        sim.set_reading(reading, value)
    return sim


async def _answer_until_eof(devices: list[SimulatedDevice]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"count":
            print(json.dumps({"requests": [len(d.requests) for d in devices]}), flush=True)


async def serve_tcp(count: int) -> None:
    library = ProfileLibrary([BUILTIN, PROFILES])
    devices = [device(1, library) for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(TcpBusSimulator([d])) for d in devices]
        print(json.dumps({"ports": [s.port for s in sims]}), flush=True)
        await _answer_until_eof(devices)


async def serve_rtu(count: int, baudrate: int) -> None:
    library = ProfileLibrary([BUILTIN, PROFILES])
    devices = [device(unit, library) for unit in range(1, count + 1)]
    async with RtuBusSimulator(devices, baudrate=baudrate, faithful_timing=True) as line:
        print(json.dumps({"port": line.port, "char_s": line.frame_s(1)}), flush=True)
        await _answer_until_eof(devices)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.modbus_sims")
    p.add_argument("transport", choices=("tcp", "rtu"))
    p.add_argument("devices", type=int)
    p.add_argument("baudrate", type=int, nargs="?", default=9600)
    a = p.parse_args()
    if a.transport == "tcp":
        asyncio.run(serve_tcp(a.devices))
    else:
        asyncio.run(serve_rtu(a.devices, a.baudrate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
