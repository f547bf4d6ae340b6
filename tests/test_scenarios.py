"""Scenarios played on the simulated compound against a real broker (time compressed): each
produces the events it tells of and raises exactly the alerts it declares."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from gateway.config_file import load_config
from gateway.core.model import Alert, AlertState, DeviceEvent
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.scenarios import SCENARIOS
from simulators.site import SimulatedSite
from tests.helpers import Seen, Watcher, eventually, intake_open, running

# scenario -> the (device, event type) pairs it must produce, in this order per device
EXPECTED = {
    "elder-sos": [("elder-3-1-502", "press"), ("elder-5-2-101", "press"),
                  ("elder-5-2-101", "cancel")],
    "fire-building-3": [("smoke-3-2-017", "alarm"), ("smoke-3-5-001", "alarm")],
    "manhole-theft": [("manhole-e3", "open")],
    "fever-at-gate": [("gate-south", "fever"), ("gate-south", "fever")],
    "door-forced": [("door-7-2", "forced_open")],
    "quiet-night": [],
    "device-dies": [],
    "sos-battery-dead": [("sos-7-1-301", "press")],
}


# scenario -> readings that must arrive from the devices it drives (polled devices report
# more); each MQTT device adds the check-in its simulator sends when attached
TELEMETRY: dict[str, dict[str, int]] = {
    "quiet-night": {"smoke-3-1": 1 + 5, "manhole-n1": 1 + 5}}

# events the scenarios do not tell of: status changes and the devices' check-ins
NOT_TOLD = ("online", "offline", "heartbeat")


def test_every_scenario_has_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_scenario(tmp_path: Path, mosquitto: Mosquitto, name: str) -> None:
    said: list[str] = []

    async def compressed(seconds: float) -> None:
        # a real pause (presses 0 ms apart would be contact bounce), long enough for a
        # device that stopped answering polls every second to be found silent
        await asyncio.sleep(min(seconds * 0.3, 3.0))

    async with SimulatedSite(tmp_path / "site") as site:
        config_file = tmp_path / "gateway.toml"
        # polled every second: offline after 1.75 s of silence, within the compressed time
        config_file.write_text(site.config(mosquitto.port, "http://127.0.0.1:9", poll_s=1.0,
                                           alarm_poll_s=0.25))
        # no store here: do not wait for it at shutdown
        config = load_config(config_file).model_copy(update={"shutdown_timeout_s": 0.3})
        scenario = SCENARIOS[name]
        async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{config.site}/#", "observer"
        ) as watcher:
            await intake_open(gateway)
            devices = await site.attach(config, gateway.pin_factory, gateway.clock)
            await scenario.run(devices, compressed, said.append)
            seen: list[Seen] = []

            def count(suffix: str, device: str | None = None) -> int:
                return sum(1 for s in seen if s.topic.endswith(suffix)
                           and (device is None or s.topic.split("/")[3] == device))

            async def all_arrived() -> bool:
                while not watcher.queue.empty():
                    seen.append(watcher.queue.get_nowait())
                events = [msgspec.json.decode(s.payload, type=DeviceEvent) for s in seen
                          if s.topic.endswith("/event")]
                return (sum(e.type not in NOT_TOLD for e in events) >= len(EXPECTED[name])
                        and all(count("/telemetry", d) >= n
                                for d, n in TELEMETRY.get(name, {}).items())
                        and set(scenario.alerts) <= fired(seen))

            # the last edges and polls may still be on their way through the journal, and
            # a rule's `for` may still be running
            await eventually(all_arrived, what="what the scenario sent and the alerts")
            await eventually(lambda: gateway.runner.idle
                             and gateway.mqtt_sink.cursor == gateway.journal.last_seq,
                             what="rules and MQTT caught up")
            # a marker of our own, published after everything: when it arrives, so has the rest
            marker = f"sc/{config.site}/test/marker"
            await watcher.publish(marker, b"end", qos=1)
            while not seen or seen[-1].topic != marker:
                seen.append(await watcher.next(lambda s: True))
    events = [msgspec.json.decode(s.payload, type=DeviceEvent) for s in seen
              if s.topic.endswith("/event")]
    assert [(e.device, e.type) for e in events if e.type not in NOT_TOLD] == EXPECTED[name]
    assert said, "a scenario tells what happens"
    assert fired(seen) == set(scenario.alerts)
    alerts = [msgspec.json.decode(s.payload, type=Alert) for s in seen
              if "/alerts/elder.sos/" in s.topic and not s.topic.endswith("/ack")]
    if name == "elder-sos":
        assert {(a.device, a.state) for a in alerts} == {
            ("elder-3-1-502", AlertState.FIRING), ("elder-5-2-101", AlertState.FIRING),
            ("elder-5-2-101", AlertState.RESOLVED)}
    for device, n in TELEMETRY.get(name, {}).items():
        assert count("/telemetry", device) == n


def fired(seen: list[Seen]) -> set[tuple[str, str]]:
    """(rule, key) of every alert published firing while the scenario ran."""
    alerts = [msgspec.json.decode(s.payload, type=Alert) for s in seen
              if "/alerts/" in s.topic and not s.topic.endswith("/ack") and not s.retain]
    return {(a.rule, a.device) for a in alerts if a.state is AlertState.FIRING}


def test_simulate_lists_scenarios_and_refuses_unknown_ones() -> None:
    listed = subprocess.run([sys.executable, "-m", "gateway.ops.cli", "simulate", "--list"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0
    for name, scenario in SCENARIOS.items():
        assert name in listed.stdout
        alerts = ", ".join(f"{rule} ({key})" for rule, key in scenario.alerts) or "none"
        assert f"alerts: {alerts}\n" in listed.stdout
    unknown = subprocess.run([sys.executable, "-m", "gateway.ops.cli", "simulate", "--scenario",
                              "alien-landing"], capture_output=True, text=True, timeout=60,
                             check=False)
    assert unknown.returncode == 2
    assert "unknown scenario(s): alien-landing" in unknown.stderr
