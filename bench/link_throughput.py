"""The broker link alone: messages per second in and out at QoS 0 and 1, CPU per 10,000.

    python -m bench.link_throughput [--messages N] [--port PORT]

Runs the gateway's MqttLink against a private Mosquitto (or one on PORT); the other side of
each measurement is a separate process speaking raw MQTT (bench.mqtt_wire), so the CPU time
measured is the link's own. In: a peer publishes N messages as fast as the broker takes
them; the time runs from the first message the link hands to its handler to the last.
Out: the link publishes N messages (QoS 0 in batches as the MQTT sink sends telemetry,
QoS 1 a hundred at a time awaiting their PUBACKs); the time runs until the peer has them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import mqtt_wire
from gateway.core.clock import SystemClock
from gateway.core.config import BrokerConfig
from gateway.core.counters import Counters
from gateway.mqtt_link import LastWill, MqttLink
from gateway.ops.private_servers import Mosquitto

PAYLOAD = (b'{"v":1,"id":"0190a3c2-7d1e-7b3a-9d4c-2f1e0a9b8c7d","kind":"temp_gate",'
           b'"device":"gate-12","ts":1767225600000,"values":{"temp_x10":365}}')
QUIET_S = 2.0  # in: no message for this long ends a measurement that lost some
WINDOW = 500  # in: QoS 1 messages the peer has in flight


@dataclass(frozen=True, slots=True)
class Figure:
    direction: str
    qos: int
    messages: int
    received: int
    per_s: float
    cpu_s_per_10k: float


def _peer_publish(port: int, qos: int, count: int) -> None:
    conn = mqtt_wire.Connection("127.0.0.1", port, f"bench-link-pub-{time.monotonic_ns()}")
    packets = [mqtt_wire.publish_packet(f"bench/in/d{i % 50}".encode(), PAYLOAD, qos=qos,
                                        mid=(i % 65_535) + 1 if qos else 0)
               for i in range(count)]
    if qos == 0:
        for first in range(0, count, 1000):
            conn.sock.sendall(b"".join(packets[first:first + 1000]))
    else:
        # a window of messages in flight, as a client keeps: a publisher that sends
        # without reading its PUBACKs is dropped by the broker
        sent = acked = 0
        while acked < count:
            if sent < count and sent - acked < WINDOW:
                upto = min(count, sent + 100)
                conn.sock.sendall(b"".join(packets[sent:upto]))
                sent = upto
                continue
            kind, _, _ = conn.next_packet()
            acked += kind == mqtt_wire.PUBACK
    time.sleep(0.5)
    conn.close()


def _peer_subscribe(port: int, count: int) -> None:
    conn = mqtt_wire.Connection("127.0.0.1", port, f"bench-link-sub-{time.monotonic_ns()}")
    conn.subscribe("bench/out/#", qos=1)
    print("ready", flush=True)
    seen = 0
    while seen < count:
        kind, flags, body = conn.next_packet()
        if kind == mqtt_wire.PUBLISH:
            seen += 1
            message = mqtt_wire.parse_publish(flags, body)
            if message.qos:
                conn.sock.sendall(mqtt_wire.puback_packet(message.mid))
    print("done", flush=True)
    conn.close()


def _link(port: int, name: str) -> MqttLink:
    return MqttLink(BrokerConfig(port=port, publish_timeout_s=30), f"bench-{name}",
                    LastWill(f"bench/{name}/status", b"offline"), SystemClock(), Counters())


async def _peer(*args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.link_throughput", *map(str, args),
        stdout=asyncio.subprocess.PIPE)


async def measure_in(port: int, qos: int, count: int) -> Figure:
    link = _link(port, f"in{qos}")
    times: list[float] = []

    def handle(message: Any) -> None:
        times.append(time.perf_counter())

    link.subscribe("bench/in/#", handle)
    running = asyncio.create_task(link.run(), name="bench.link")
    try:
        await asyncio.wait_for(link.session(), 10)
        cpu = time.process_time()
        peer = await _peer("peer-pub", port, qos, count)
        seen = -1
        while len(times) != seen and len(times) < count:
            seen = len(times)
            await asyncio.sleep(QUIET_S if times else 5.0)
        cpu = time.process_time() - cpu
        await peer.wait()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return Figure("in", qos, count, len(times), len(times) / span,
                  cpu / max(len(times), 1) * 10_000)


async def measure_out(port: int, qos: int, count: int) -> Figure:
    link = _link(port, f"out{qos}")
    running = asyncio.create_task(link.run(), name="bench.link")
    try:
        session = await asyncio.wait_for(link.session(), 10)
        peer = await _peer("peer-sub", port, count)
        assert peer.stdout is not None
        await peer.stdout.readline()  # ready
        cpu = time.process_time()
        start = time.perf_counter()
        messages = [(f"bench/out/d{i % 50}", PAYLOAD) for i in range(count)]
        if qos == 0:
            for first in range(0, count, 2000):
                await link.publish_fast(session, messages[first:first + 2000])
        else:
            for first in range(0, count, 100):
                await asyncio.gather(*(link.publish_on(session, t, p, qos=1)
                                       for t, p in messages[first:first + 100]))
        cpu = time.process_time() - cpu
        await asyncio.wait_for(peer.stdout.readline(), 60)  # done
        span = time.perf_counter() - start
        await peer.wait()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return Figure("out", qos, count, count, count / span, cpu / count * 10_000)


async def measure(port: int, count: int) -> list[Figure]:
    return [await measure_in(port, 0, count), await measure_in(port, 1, count),
            await measure_out(port, 0, count), await measure_out(port, 1, count)]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "peer-pub":
        _peer_publish(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "peer-sub":
        _peer_subscribe(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.link_throughput")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=None, help="a running broker's port")
    args = parser.parse_args()
    if args.port is not None:
        figures = asyncio.run(measure(args.port, args.messages))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            broker = Mosquitto(Path(tmp))
            broker.start()
            try:
                figures = asyncio.run(measure(broker.port, args.messages))
            finally:
                broker.stop()
    for figure in figures:
        print(json.dumps(asdict(figure)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
