"""The gateway on the simulated compound writes to real InfluxDB 1.x through the v1 API;
the dashboard's queries read back what the scenarios did."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec

from gateway.config_file import load_config
from gateway.core.topics import Topics
from gateway.ops.grafana.queries import (
    ACTIVE_ALARMS,
    ALARM_COUNTS,
    ALARM_STATES,
    BUILDINGS,
    CRITICAL_UNACKNOWLEDGED,
    DEVICES_OFFLINE,
    FEVER_READINGS,
    MANHOLE_TILT,
    OFFLINE_DEVICES,
    InfluxQuery,
    render,
)
from gateway.ops.private_servers import InfluxDB1, Mosquitto
from gateway.supervisor import Gateway
from simulators.scenarios import SCENARIOS
from simulators.site import SimulatedSite
from tests.grafana.demo_day import rows
from tests.helpers import Watcher, eventually, intake_open, running

DATABASE = "e2e_demo"


async def instant(seconds: float) -> None:
    # time compressed, yet a real pause: presses 0 ms apart would be contact bounce
    await asyncio.sleep(min(seconds, 0.1))


async def test_dashboard_queries_read_back_the_scenarios(
        tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1) -> None:
    influxdb1.create_database(DATABASE)
    start = int(time.time() * 1000) - 1_000

    async def query(q: InfluxQuery, interval: str = "1s") -> list[dict[str, Any]]:
        text = render(q.text, start_ms=start, end_ms=int(time.time() * 1000) + 1_000,
                      interval=interval)
        return rows(await asyncio.to_thread(influxdb1.query, text, DATABASE))

    async def active() -> dict[tuple[str, str], int]:
        return {(r["rule"], r["device"]): r["state_code"] for r in await query(ACTIVE_ALARMS)}

    async with SimulatedSite(tmp_path / "site") as site:
        config_file = tmp_path / "gateway.toml"
        text = site.config(mosquitto.port, influxdb1.url)
        assert 'bucket = "scgw"\n' in text
        text = text.replace('bucket = "scgw"\n', f'api = "v1"\ndatabase = "{DATABASE}"\n')
        config_file.write_text(text)
        config = load_config(config_file)
        said: list[str] = []
        async with running(Gateway(config)) as gateway, Watcher(
                mosquitto.port, f"sc/{config.site}/gateway/#", "duty-officer") as officer:
            await intake_open(gateway)
            devices = await site.attach(config, gateway.pin_factory, gateway.clock)
            for name in ("elder-sos", "fever-at-gate", "manhole-theft"):
                await SCENARIOS[name].run(devices, instant, said.append)

            async def scenarios_stored() -> bool:
                return {("elder.sos", "elder-3-1-502"), ("manhole.open", "manhole-e3"),
                        ("manhole.tilt", "manhole-e3"),
                        ("temp_gate.fever", "gate-south")} <= set(await active())

            await eventually(scenarios_stored, timeout=30, what="the scenarios' alerts stored")
            critical = await query(CRITICAL_UNACKNOWLEDGED)
            assert [(r["device"], r["rule"]) for r in critical] == [
                ("elder-3-1-502", "elder.sos")]

            await officer.publish(Topics(config.site).alert_ack("elder.sos", "elder-3-1-502"),
                                  msgspec.json.encode({"by": "duty-office"}))

            async def acknowledged() -> bool:
                return (await active()).get(("elder.sos", "elder-3-1-502")) == 2

            await eventually(acknowledged, timeout=15, what="the acknowledgement stored")

            # device-dies, with its waits replaced by waiting for the store to show each step
            await devices["smoke-3-2"].die()

            async def offline_listed() -> bool:
                return [r["device"] for r in await query(DEVICES_OFFLINE)] == ["smoke-3-2"]

            await eventually(offline_listed, timeout=20, what="smoke-3-2 offline in the store")
            offline_rule = await query(OFFLINE_DEVICES)
            assert [(r["device"], r["kind"], r["online"]) for r in offline_rule] == [
                ("smoke-3-2", "smoke", 0)]
            assert (await active()).get(("device.offline", "smoke-3-2")) == 1
            # the panel shows a state per 100 ms: a device that comes back within the bucket
            # of its offline alert would show only "resolved" there, as the dashboard should.
            # The scenario is a device dead for a while: it stays dead past the next bucket.
            [fired] = [a for a in gateway.rules.active() if a.rule == "device.offline"]
            await asyncio.sleep(max(0, fired.ts + 250 - gateway.clock.now_ms()) / 1000)
            await devices["smoke-3-2"].revive()

            async def back_online() -> bool:
                return (await query(DEVICES_OFFLINE) == []
                        and ("device.offline", "smoke-3-2") not in await active())

            await eventually(back_online, timeout=20, what="smoke-3-2 back online in the store")

    # elder-5-2-101 was pressed by mistake and cancelled, smoke-3-2 came back: resolved
    assert await active() == {("elder.sos", "elder-3-1-502"): 2,
                              ("manhole.open", "manhole-e3"): 1,
                              ("manhole.tilt", "manhole-e3"): 1,
                              ("temp_gate.fever", "gate-south"): 1}

    states: dict[tuple[str, str], list[int]] = {}
    for r in await query(ALARM_STATES, interval="100ms"):
        if r["last"] is not None:
            seen = states.setdefault((r["device"], r["rule"]), [])
            if not seen or seen[-1] != r["last"]:
                seen.append(r["last"])
    assert states == {("elder-3-1-502", "elder.sos"): [1, 2],
                      ("elder-5-2-101", "elder.sos"): [1, 3],
                      ("manhole-e3", "manhole.open"): [1],
                      ("manhole-e3", "manhole.tilt"): [1],
                      ("gate-south", "temp_gate.fever"): [1],
                      ("smoke-3-2", "device.offline"): [1, 3]}

    counts = {(r["kind"], r["severity"]): r["alarms"] for r in await query(ALARM_COUNTS)}
    assert counts == {("elder_button", "critical"): 2, ("manhole", "major"): 2,
                      ("smoke", "major"): 1, ("temp_gate", "major"): 1}

    assert await query(DEVICES_OFFLINE) == []
    assert await query(OFFLINE_DEVICES) == []
    assert await query(CRITICAL_UNACKNOWLEDGED) == []

    fever = await query(FEVER_READINGS)
    assert [(r["device"], r["building"], r["body_temp_c"]) for r in fever] == [
        ("gate-south", "south-gate", 37.9), ("gate-south", "south-gate", 37.8)]
    # the north gate was polled all along at a normal 36.5, which the panel leaves out
    normal = rows(await asyncio.to_thread(
        influxdb1.query, 'SELECT count("body_temp_c") FROM "sc_temp_gate" '
        "WHERE \"device\" = 'gate-north' AND \"body_temp_c\" = 36.5", DATABASE))
    assert normal[0]["count"] >= 2

    tilt = [r for r in await query(MANHOLE_TILT) if r["max"] is not None]
    assert max(r["max"] for r in tilt if r["device"] == "manhole-e3") == 35.0

    buildings = {r["value"] for r in await query(BUILDINGS)}
    assert {"3", "5", "east-gate", "north-gate", "south-road"} <= buildings
    assert said, "the scenarios told what happened"
