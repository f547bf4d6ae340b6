"""Alarm latency under load: elder buttons pressed while the pipeline runs at half its rate.

The gateway of the pipeline benchmark (200 temperature gates, 10 GPIO elder buttons on
gpiozero's mock pins) gets the gates' open-loop load at half the highest rate it
sustained; meanwhile buttons are pressed one at a time, and each press is timed from the
release (stamped just before the mock pin goes up) to the retained `firing` alert
arriving at a separate subscriber. The release counts, not the press: a press becomes an
alarm when it ends (a long hold is a cancel), after the button's debounce time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import configs
from bench.alerts import watch_alerts
from bench.children import Child, python_module
from bench.gateway_bench import Servers, Sizes, _presses
from bench.hostctl import BenchError, GatewayProcess
from bench.report import Row
from bench.stats import Summary
from bench.systems import PIPELINE_SITE, pipeline_gateway

Progress = Callable[[str], None]


async def run(srv: Servers, workdir: Path, progress: Progress, *, rate: float,
              presses: int = 1000, sizes: Sizes | None = None,
              store_batch: int | None = None) -> list[Row]:
    sizes = replace(sizes or Sizes(), presses=presses, buttons=10)
    where = workdir / "gateway-alarm-load"
    config = pipeline_gateway(where, srv, store_batch=store_batch)
    ids = [configs.button_id(i) for i in range(sizes.buttons)]
    # longer than the presses can take; ended as soon as they are done
    seconds = 30 + presses * (sizes.hold_s + sizes.gap_s + 0.2)
    progress(f"alarm latency under load: {presses} presses while the gates send {rate:,.0f}/s")
    async with GatewayProcess("gateway-alarm-load", config, where) as gw, \
            watch_alerts(srv.mosquitto.port, PIPELINE_SITE) as watcher, \
            Child("gates-alarm-load", python_module(
                "bench.gates", "--port", str(srv.mosquitto.port), "--rate", f"{rate:g}",
                "--seconds", f"{seconds:g}", "--prefix", configs.GATE_PREFIX,
                "--client-id", "bench-gates-alarm-load",
                "--out", str(workdir / "fevers-alarm-load.json")), workdir) as gates:
        await gates.read_json(30)
        await gates.send("go")
        await asyncio.sleep(3)  # the load is running and every gate is online
        await _presses(gw, watcher, ids, len(ids), sizes)  # warm-up, not measured
        before = await gw.stats()
        measured = await _presses(gw, watcher, ids, presses, sizes)
        after = await gw.stats()
        if not gates.running:
            raise BenchError("the gates stopped before the presses were done")
    ingested = after.counters["ingress_messages"] - before.counters["ingress_messages"]
    load = ingested / max(after.mono - before.mono, 1e-9)
    dropped = after.counters["dropped"] - before.counters["dropped"]
    bounces = after.counters["gpio_bounces"] - before.counters["gpio_bounces"]
    if bounces or after.suppressed != before.suppressed:
        raise BenchError(f"presses went astray under load: {bounces} bounce(s)")
    mqtt = Summary.of_seconds(measured.mqtt)
    store = Summary.of_seconds(measured.store)
    data = {**mqtt.as_dict(), "load_per_s": load, "target_load_per_s": rate,
            "telemetry_dropped": dropped, "debounce_ms": configs.DEBOUNCE_MS,
            "store_p50_ms": store.p50, "store_p99_ms": store.p99, "store_max_ms": store.max}
    await asyncio.to_thread((workdir / "alarm-load.json").write_text, json.dumps(data))
    return [Row(
        "alarm under load",
        f"button release -> retained firing alert on MQTT, {mqtt.count} presses, gates at "
        f"{load:,.0f}/s", f"{mqtt.p50:.1f} / {mqtt.p99:.1f} / {mqtt.max:.1f} ms",
        f"p50 / p99 / max; includes the button's {configs.DEBOUNCE_MS} ms debounce; store "
        f"accepted the alert's point after p50/p99 {store.p50:.1f}/{store.p99:.1f} ms; "
        f"{dropped:,} readings dropped meanwhile",
        data)]
