"""The ingress load: `python -m bench.publisher ...` publishes device JSON as fast as it can.

It runs in a process of its own so that it does not share the gateway's CPU time slice or
event loop. It prints one JSON line: how many it sent and when (time.monotonic()).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import aiomqtt

# publishes in flight at once: QoS 0 ones finish on the socket write, QoS 1 on the PUBACK
WINDOW = {0: 64, 1: 1024}
PACED_WINDOW = 16  # with a set rate: small bursts


def payloads(kind: str, count: int = 64) -> list[bytes]:
    """Distinct, realistic bodies; `kind` "telemetry" or "event" (telemetry plus an event)."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        body: dict[str, object] = {
            "temperature_c": round(rng.uniform(18, 26), 2),
            "obscuration_pct_ft": round(rng.uniform(0, 0.5), 3),
            "battery_pct": rng.randint(60, 100),
        }
        if kind == "event":
            state = rng.choice(["open", "closed"])
            body = {"state": state, "door_open": int(state == "open")}
        out.append(json.dumps(body).encode())
    return out


async def publish(host: str, port: int, topics: list[str], count: int, qos: int,
                  kind: str, rate: float = 0) -> dict[str, float | int]:
    """Publish `count` messages round-robin over `topics`, at `rate` per second (0: flat out)."""
    bodies = payloads(kind)
    window = PACED_WINDOW if rate > 0 else WINDOW[qos]
    async with aiomqtt.Client(host, port, identifier=f"bench-publisher-{time.monotonic_ns()}",
                              max_inflight_messages=window) as client:
        client.pending_calls_threshold = 2 * window  # a full window is the plan, not a fault
        first = time.monotonic()
        index = 0
        while index < count:
            chunk = range(index, min(index + window, count))
            await asyncio.gather(*(
                client.publish(topics[i % len(topics)], bodies[i % len(bodies)], qos=qos)
                for i in chunk))
            index = chunk.stop
            if rate > 0:  # hold the average rate: wait until this many are due
                await asyncio.sleep(max(0.0, first + index / rate - time.monotonic()))
        last = time.monotonic()
    return {"sent": count, "first": first, "last": last}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publisher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topics", required=True, help="comma-separated, used round-robin")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--kind", choices=("telemetry", "event"), default="telemetry")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: flat out")
    args = parser.parse_args()
    result = asyncio.run(publish(args.host, args.port, args.topics.split(","), args.count,
                                 args.qos, args.kind, args.rate))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
