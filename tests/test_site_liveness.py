"""The simulated compound left idle: every device is online at once and stays online."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec

from gateway.config_file import load_config
from gateway.core.clock import ManualClock
from gateway.core.config import ModbusDevice
from gateway.core.model import DeviceEvent
from gateway.ops.private_servers import Mosquitto
from gateway.status import Status
from gateway.supervisor import Gateway
from simulators.site import SimulatedSite
from tests.helpers import Seen, Watcher, eventually, intake_open, running

HOURS = 2  # past 1.75 intervals of the hourly zigbee check-ins, when a silent one is offline


async def test_compound_left_idle_checks_in_on_time_and_raises_no_alert(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    clock = ManualClock()
    async with SimulatedSite(tmp_path / "site") as site:
        config_file = tmp_path / "gateway.toml"
        config_file.write_text(site.config(mosquitto.port, "http://127.0.0.1:9"))
        config = load_config(config_file)
        # manual time jumps from one heartbeat to the next, farther than a Modbus poll
        # schedule can follow: polled devices' liveness is not what is tested here
        devices = [d.model_copy(update={"heartbeat_s": 86_400})
                   if isinstance(d, ModbusDevice) else d for d in config.devices]
        config = config.model_copy(update={"devices": devices, "shutdown_timeout_s": 0.3})
        async with running(Gateway(config, clock=clock)) as gateway, Watcher(
                mosquitto.port, f"sc/{config.site}/#", "observer") as watcher:
            await intake_open(gateway)
            await site.attach(config, gateway.pin_factory, clock)
            board = gateway.board
            # all nineteen online before any time has passed: polled devices answered their
            # first poll, the others sent their first check-in (a fire panel's detectors
            # with their transmission device's)
            assert len(config.devices) == 19
            await eventually(lambda: all(board.get(d.id) is Status.ONLINE
                                         for d in config.devices), what="every device online")
            assert site.heartbeats == {
                "sos-7-1-301": 3600, "smoke-3-1": 3600, "manhole-n1": 21600, "manhole-e3": 21600,
                "gate-east": 300, "door-7-1": 300, "door-3-1": 60, "gate-west": 30,
                "fire-panel-3": 30, "door-7-2": 60, "gate-south": 60}

            def checked_in() -> bool:
                now = clock.monotonic()
                return all(board.last_seen(d) >= now // every * every
                           for d, every in site.heartbeats.items())

            while clock.monotonic() < HOURS * 3600:
                # to the next heartbeat due; the supervisor looks at least once per jump
                now = clock.monotonic()
                clock.advance(min(every - now % every for every in site.heartbeats.values()))
                await eventually(checked_in, interval=0.002,
                                 what=f"the check-ins due at {clock.monotonic():g} s")
                assert all(board.get(d.id) is Status.ONLINE for d in config.devices)

            # JSON heartbeats are events (serial heartbeat frames only mark the device alive);
            # zigbee2mqtt check-ins carry the device's state: telemetry, at start and hourly
            beats_due = {"gate-east": HOURS * 12 + 1, "door-7-1": HOURS * 12 + 1,
                         "manhole-n1": 1}
            readings_due = {"sos-7-1-301": HOURS + 1, "smoke-3-1": HOURS + 1, "manhole-n1": 1}
            seen: list[Seen] = []

            def beats() -> Counter[str]:
                return Counter(e.device for e in (
                    msgspec.json.decode(s.payload, type=DeviceEvent)
                    for s in seen if s.topic.endswith("/event")) if e.type == "heartbeat")

            def readings() -> dict[str, int]:
                counts = Counter(s.topic.split("/")[3] for s in seen
                                 if s.topic.endswith("/telemetry"))
                return {d: counts[d] for d in readings_due}

            def published() -> bool:
                # a device is seen before its events are journalled: the last may still be
                # on their way to MQTT
                while not watcher.queue.empty():
                    seen.append(watcher.queue.get_nowait())
                return (all(beats()[d] >= n for d, n in beats_due.items())
                        and all(readings()[d] >= n for d, n in readings_due.items()))

            await eventually(published, what="every check-in on MQTT")
            await eventually(lambda: gateway.runner.idle
                             and gateway.mqtt_sink.cursor == gateway.journal.last_seq,
                             what="rules and MQTT caught up")
            marker = f"sc/{config.site}/test/marker"
            await watcher.publish(marker, b"end", qos=1)
            while seen[-1].topic != marker:
                seen.append(await watcher.next(lambda s: True))
    statuses = [(s.topic.split("/")[3], s.payload) for s in seen if s.topic.endswith("/status")]
    assert (b"offline" not in {p for _, p in statuses}), statuses
    assert not [s.topic for s in seen if "/alerts/" in s.topic], "no alert nobody caused"
    assert beats() == beats_due
    assert readings() == readings_due
