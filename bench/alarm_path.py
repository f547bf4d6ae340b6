"""The alarm's path with the gateway's event loop kept busy in turns of a fixed length.

Under load the alarm's latency depends on what the neighbours on the machine do at that
moment, and three runs of `alarm-load` can differ by more than a change is worth. Here the
load is the same in every run: a task inside the gateway's process spins in Python for
`spin` ms, then yields to the event loop (a turn with a `select()` that releases the
interpreter lock), over and over, while elder buttons are pressed one at a time. Each
press is timed as in `alarm-load`, from the release to the retained firing alert at a
subscriber in another process, 10 ms of it the debounce.

Two things show here that the noise hides elsewhere: how many turns of the loop the path
waits for (each costs up to `spin`), and how long the journal thread waits for the
interpreter lock while the loop holds it (a commit takes the lock back after each of its
SQLite calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench import configs
from bench.alerts import watch_alerts
from bench.gateway_bench import Servers, Sizes, _presses
from bench.hostctl import BenchError, GatewayProcess
from bench.report import Row
from bench.stats import Summary
from bench.systems import PIPELINE_SITE, pipeline_gateway

Progress = Callable[[str], None]

SPINS_MS = (0.0, 0.2, 0.5, 2.0)


async def run(srv: Servers, workdir: Path, progress: Progress, *, presses: int = 200,
              spins_ms: Sequence[float] = SPINS_MS) -> list[Row]:
    sizes = replace(Sizes(), presses=presses, buttons=10, gap_s=0.02)
    where = workdir / "gateway-alarm-path"
    config = pipeline_gateway(where, srv, gates=0)
    ids = [configs.button_id(i) for i in range(sizes.buttons)]
    rows: list[Row] = []
    async with GatewayProcess("gateway-alarm-path", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, PIPELINE_SITE) as watcher:
        await _presses(gw, watcher, ids, len(ids), sizes)  # warm-up, not measured
        for spin in spins_ms:
            progress(f"alarm path: {presses} presses, the event loop busy in turns of "
                     f"{spin:g} ms")
            await gw.request("busy", spin_ms=spin)
            before = await gw.stats()
            measured = await _presses(gw, watcher, ids, presses, sizes)
            after = await gw.stats()
            turns = int((await gw.request("busy", spin_ms=0.0))["turns"])
            if after.counters["gpio_bounces"] != before.counters["gpio_bounces"]:
                raise BenchError("presses went astray: bounces counted")
            mqtt = Summary.of_seconds(measured.mqtt)
            data = {**mqtt.as_dict(), "spin_ms": spin, "busy_turns": turns}
            rows.append(Row(
                "alarm path",
                f"button release -> retained firing alert on MQTT, {mqtt.count} presses, "
                f"the event loop busy in turns of {spin:g} ms",
                f"{mqtt.p50:.1f} / {mqtt.p99:.1f} / {mqtt.max:.1f} ms",
                f"p50 / p99 / max; includes the button's {configs.DEBOUNCE_MS} ms debounce; "
                f"{turns:,} turns of the spinning task meanwhile", data))
    return rows
