"""Noise on an RS-485 line while an elder presses an MQTT SOS button: the alert comes as
quickly as on a quiet line, the devices of another bus stay online, and the noise is
counted."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiomqtt

from drivers.profile import ProfileLibrary
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.modbus_device import SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator
from tests.faults.burst import verdict_after
from tests.faults.oracle import Observer
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site

NOISE = 64 * 1024  # bytes of interference, delivered in chunks as a UART would
CHUNK = 1024
POLL_S = 0.2
# an alert on a noisy line may take this much longer than on a quiet one
SLACK_S = 1.0


def _smoke(device: str, bus: str, unit: int) -> dict[str, object]:
    return {"id": device, "kind": "smoke", "transport": "modbus",
            "profile": "modbus-smoke-detector",
            "modbus": {"bus": bus, "unit": unit, "poll_s": POLL_S, "alarm_poll_s": POLL_S}}


async def test_noise_on_a_serial_line_delays_no_alarm_and_no_other_bus(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("fault-noise")
    profile = ProfileLibrary().get("modbus-smoke-detector")
    rtu_units = [SimulatedDevice(n, profile) for n in (1, 2)]
    tcp_unit = SimulatedDevice(1, profile)
    for unit in (*rtu_units, tcp_unit):
        unit.set_reading("battery_pct", 90)
    topics = {sos: f"vendor/{site}/{sos}" for sos in ("sos-1", "sos-2")}
    async with RtuBusSimulator(rtu_units) as line, TcpBusSimulator([tcp_unit]) as tcp:
        devices = [_smoke("smoke-r1", "rs485", 1), _smoke("smoke-r2", "rs485", 2),
                   _smoke("smoke-t1", "lan", 1),
                   *(sos_mqtt(sos, topic) for sos, topic in topics.items())]
        config = make_config(
            tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url,
            devices=devices, shutdown_timeout_s=0.5,
            buses=[{"id": "rs485", "type": "rtu", "port": line.port, "timeout_s": 0.1,
                    "retry_max_s": 0.5},
                   {"id": "lan", "type": "tcp", "host": tcp.host, "tcp_port": tcp.port,
                    "timeout_s": 0.5, "retry_max_s": 0.5}])
        async with Observer(mosquitto.port, site) as observer, running(
            Gateway(config)
        ) as gateway, Watcher(mosquitto.port, f"sc/{site}/alerts/#", "duty") as duty, \
                aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"src-{site}") as source:
            await eventually(lambda: gateway.connected, what="connected")
            await eventually(lambda: all(gateway.board.get(d["id"]) == "online"
                                         for d in devices[:3]), what="all smoke online")

            async def sos_latency(sos: str) -> float:
                pressed = time.monotonic()
                await source.publish(topics[sos], b'{"action": "single"}', qos=1)
                await duty.next(lambda s: s.topic.endswith(f"elder.sos/{sos}"), timeout=30)
                return time.monotonic() - pressed

            quiet = await sos_latency("sos-1")
            noise = random.Random(26).randbytes(NOISE)
            tcp_polls = len(tcp_unit.requests)

            async def interfere() -> None:
                for at in range(0, NOISE, CHUNK):
                    line.noise(noise[at:at + CHUNK])
                    await asyncio.sleep(0.005)

            interference = asyncio.create_task(interfere(), name="test.noise")
            noisy = await sos_latency("sos-2")
            await interference
            await eventually(lambda: gateway.counters.get("modbus_noise_bytes") >= NOISE - CHUNK,
                             what="the noise read and dropped")
            assert noisy <= quiet + SLACK_S, f"SOS took {noisy:.2f} s, {quiet:.2f} s when quiet"
            # the other bus was served all along, and the noisy one is served again
            assert gateway.board.get("smoke-t1") == "online"
            assert len(tcp_unit.requests) > tcp_polls
            served = {u.unit: len(u.requests) for u in rtu_units}
            await eventually(lambda: all(len(u.requests) > served[u.unit] + 2
                                         for u in rtu_units), what="the line polled again")
            assert all(gateway.board.get(d) == "online" for d in ("smoke-r1", "smoke-r2"))
            assert gateway.counters.get("modbus_noise_bytes", bus="rs485") <= NOISE
            assert gateway.counters.get("modbus_noise_bytes", bus="lan") == 0
            verdict = await verdict_after(gateway, observer, victoria.url, site)
    verdict.extra["noise_bytes"] = NOISE
    verdict.print("noise on a serial line")
    assert verdict.accepted == 2
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
