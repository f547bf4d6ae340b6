"""Footprint: memory, idle CPU and start-up time of a gateway with 1,000 configured devices.

The devices are third-party MQTT devices of every kind (temperature gates, smoke sensors,
manhole covers, wireless elder buttons, door controllers), each on its own topic with a
5-minute heartbeat and the shipped rules, as a large compound would have them. Nothing
publishes during the measurement: what is left is the gateway's own cost of waiting.

The gateway runs as installed: the venv's `scgw run --config gateway.toml`, nothing of
the benchmark in its process. Start-up is from spawning it to its retained `online` status
arriving at a separate subscriber: by then it has imported everything, validated the
config, opened its journal, connected to the broker and subscribed to every device's topic.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import configs, toml_text
from bench.children import Child, python_module
from bench.gateway_bench import Servers
from bench.hostctl import REPO, BenchError
from bench.procstat import sample
from bench.report import Row

Progress = Callable[[str], None]

SITE = "foot"

# kind, share of the devices, the readings its payloads carry, (event key, events)
_MIX: tuple[tuple[str, float, list[str], tuple[str, dict[str, str]] | None], ...] = (
    ("temp_gate", 0.40, ["body_temp_c", "mask", "passage_count"], None),
    ("smoke", 0.30, ["temperature_c", "obscuration_pct_ft", "battery_pct"],
     ("alarm", {"true": "alarm", "false": "alarm_cleared"})),
    ("manhole", 0.15, ["tilt_deg", "battery_pct"], ("state", {"open": "open",
                                                              "closed": "closed"})),
    ("elder_button", 0.10, ["battery_pct", "linkquality"],
     ("action", {"single": "press", "hold": "long_press"})),
    ("access", 0.05, ["door_open"], ("door", {"open": "door_opened",
                                               "closed": "door_closed"})),
)


def devices(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, share, readings, events in _MIX:
        for _ in range(round(count * share)):
            index = len(out)
            mqtt: dict[str, Any] = {"topic": f"vendor/{kind}/{index:04d}", "readings": readings}
            if events is not None:
                mqtt["event_key"], mqtt["events"] = events[0], events[1]
            out.append({"id": f"{kind.replace('_', '-')}-{index:04d}", "kind": kind,
                        "transport": "mqtt", "heartbeat_s": 300,
                        "location": {"building": str(1 + index // 50),
                                     "floor": 1 + index % 20},
                        "mqtt": mqtt})
    return out[:count]


def _compile_bytecode() -> None:
    for package in ("gateway", "drivers", "rules"):
        compileall.compile_dir(REPO / package, quiet=1)


async def run(srv: Servers, workdir: Path, progress: Progress, *, count: int = 1000,
              idle_s: float = 20.0, settle_s: float = 5.0) -> list[Row]:
    progress(f"footprint: {count} devices, start-up, then {idle_s:g} s idle")
    where = workdir / "gateway-footprint"
    config = configs.gateway(SITE, where, srv.mosquitto.port, srv.store.url, devices(count))
    config_file = where / "gateway.toml"
    await asyncio.to_thread(where.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(config_file.write_text, toml_text.dumps(config), encoding="utf-8")
    scgw = str(Path(sys.executable).parent / "scgw")
    # an installed gateway starts from bytecode pip compiled at install; a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (or read-only) would compile every module at each start
    await asyncio.to_thread(_compile_bytecode)
    status_topic = f"sc/{SITE}/gateway/status"
    async with Child("footprint-status", python_module(
            "bench.listener", "--port", str(srv.mosquitto.port), "--filter", status_topic,
            "--out", str(workdir / "footprint-status.json"), "--client-id",
            "bench-footprint-status", "--marker", "online"), workdir) as listener:
        await listener.read_json(30)
        spawned = time.monotonic()
        async with Child("gateway-footprint", [scgw, "run", "--config", str(config_file)],
                         where, json_lines=False) as gw:
            deadline = spawned + 120
            while True:
                await listener.send("count")
                if int((await listener.read_json(10))["marked"]):
                    break
                if time.monotonic() > deadline:
                    raise BenchError("the gateway with 1,000 devices was not online in 120 s")
                await asyncio.sleep(0.01)
            await listener.close_input()
            await listener.read_json(30)  # it has written what it received
            arrivals = json.loads(await asyncio.to_thread(
                (workdir / "footprint-status.json").read_text))
            online = min(float(t) for t, _, payload in arrivals if payload == "online")
            startup_s = online - spawned
            await asyncio.sleep(settle_s)
            before = await asyncio.to_thread(sample, gw.pid)
            t0 = time.monotonic()
            await asyncio.sleep(idle_s)
            after = await asyncio.to_thread(sample, gw.pid)
            wall = time.monotonic() - t0
    cpu = after.cpu_s - before.cpu_s
    return [
        Row("footprint", f"{count} MQTT devices (5 kinds), idle {wall:.0f} s",
            f"{after.rss_kib / 1024:.1f} MiB RSS", f"peak {after.hwm_kib / 1024:.1f} MiB; "
            f"{after.threads} threads", {"devices": count, "rss_kib": after.rss_kib,
                                         "hwm_kib": after.hwm_kib, "threads": after.threads}),
        Row("footprint", f"{count} MQTT devices, idle CPU over {wall:.0f} s",
            f"{cpu / wall * 100:.2f} % of one core",
            f"{cpu:.2f} CPU-s (/proc, 10 ms ticks); the liveness check and the status file "
            "every 2 s are what runs", {"cpu_s": cpu, "wall_s": wall,
                                       "cpu_percent": cpu / wall * 100}),
        Row("footprint", f"{count} MQTT devices, start-up",
            f"{startup_s:.2f} s", "process spawned -> retained `online` received: imports, "
            f"config, journal, broker connection and {count + 1} subscriptions",
            {"startup_s": startup_s}),
    ]
