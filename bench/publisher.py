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

WINDOW = 1  # publishes in flight at once


def payloads(kind: str, count: int = 64) -> list[bytes]:
    """Distinct, realistic bodies; `kind` "telemetry" or "event" (telemetry plus an event)."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        body: dict[str, object] = {
            "temperature": round(rng.uniform(18, 26), 2),
            "smoke_density": round(rng.uniform(0, 0.05), 4),
            "battery_v": round(rng.uniform(2.9, 3.2), 3),
        }
        if kind == "event":
            body = {"battery_v": body["battery_v"], "state": rng.choice(["open", "closed"])}
        out.append(json.dumps(body).encode())
    return out


async def publish(host: str, port: int, topics: list[str], count: int, qos: int,
                  kind: str) -> dict[str, float | int]:
    bodies = payloads(kind)
    async with aiomqtt.Client(host, port, identifier=f"bench-publisher-{time.monotonic_ns()}",
                              max_queued_outgoing_messages=0) as client:
        client.pending_calls_threshold = 2 * WINDOW  # a full window is the plan, not a fault
        first = time.monotonic()
        index = 0
        while index < count:
            chunk = range(index, min(index + WINDOW, count))
            await asyncio.gather(*(
                client.publish(topics[i % len(topics)], bodies[i % len(bodies)], qos=qos)
                for i in chunk))
            index = chunk.stop
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
    args = parser.parse_args()
    result = asyncio.run(publish(args.host, args.port, args.topics.split(","), args.count,
                                 args.qos, args.kind))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
