"""Twenty Modbus RTU devices on one pty bus: one that stops answering goes offline within two
poll intervals (status and event on MQTT) while the others keep being served, and comes
back online when it revives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drivers.profile import ProfileLibrary
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.modbus_device import Fault, SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from tests.helpers import (
    Watcher,
    eventually,
    make_config,
    running,
    status_and_event,
    unique_site,
)

POLL_S = 1.0
UNITS = 20


async def test_dead_unit_goes_offline_and_comes_back(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    site = unique_site("mb-live")
    profile = ProfileLibrary().get("modbus-smoke-detector")
    units = [SimulatedDevice(n, profile) for n in range(1, UNITS + 1)]
    for unit in units:
        unit.set_reading("battery_pct", 90)
    async with RtuBusSimulator(units) as bus:
        devices: list[dict[str, Any]] = [
            {"id": f"smoke-{u.unit}", "kind": "smoke", "transport": "modbus",
             "profile": profile.name,
             "modbus": {"bus": "rs485", "unit": u.unit, "poll_s": POLL_S,
                        "alarm_poll_s": POLL_S}} for u in units]
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port, devices=devices,
                             buses=[{"id": "rs485", "type": "rtu", "port": bus.port,
                                     "timeout_s": 0.1, "retry_max_s": 0.5}],
                             shutdown_timeout_s=0.3)
        async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/smoke/#", "w"
        ) as watcher:
            await eventually(lambda: all(gateway.board.get(d["id"]) == "online"
                                         for d in devices), what="all online")
            units[1].fail(Fault.NO_ANSWER)
            died = time.monotonic()
            await status_and_event(watcher, "smoke-2", "offline")
            assert time.monotonic() - died <= 2 * POLL_S + 0.3  # within two intervals
            others = [u for u in units if u.unit != 2]
            assert all(gateway.board.get(f"smoke-{u.unit}") == "online" for u in others)
            polls = {u.unit: len(u.requests) for u in others}
            await eventually(lambda: all(len(u.requests) > polls[u.unit] + 2 for u in others),
                             what="the others still polled")
            assert gateway.counters.get("rejected", device="smoke-2", reason="timeout") >= 1
            units[1].heal()
            await status_and_event(watcher, "smoke-2", "online")

