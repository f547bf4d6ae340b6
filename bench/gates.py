"""Open-loop load: `python -m bench.gates ...` is N temperature gates publishing passages.

Messages go round-robin over the gates at a fixed rate, whether or not the system under
test keeps up: every millisecond or so the packets that are due are written to the broker
in one go. A share of the readings are fevers (above 37.3 °C); a gate never sends two
fevers in a row, and its first reading is normal, so each fever is a new alert for a
stateful rule engine too.

It prints `{"ready": true}` once connected, starts on a `go` line on stdin, and at the end
writes every fever it sent (gate, sequence number, value, time.monotonic() of sending) to
the --out file and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.mqtt_wire import Connection, publish_packet

FEVER_ABOVE = 37.3
TICK_S = 0.001  # packets due within a tick go out in one write


def gate_id(index: int) -> str:
    return f"gate-{index:03d}"


def gate_topic(prefix: str, index: int) -> str:
    return f"{prefix}/{gate_id(index)}"


@dataclass(frozen=True, slots=True)
class Plan:
    port: int
    gates: int
    prefix: str
    rate: float
    seconds: float
    fever_share: float
    seed: int
    client_id: str


def run(plan: Plan, out: Path) -> dict[str, object]:
    rng = random.Random(plan.seed)
    conn = Connection("127.0.0.1", plan.port, plan.client_id)
    topics = [gate_topic(plan.prefix, g).encode() for g in range(plan.gates)]
    # as if each gate's last reading had been a fever: the first one is normal, which also
    # ends an alert left firing by a fever at the end of the previous run
    last_fever = [True] * plan.gates
    last_ms = [0] * plan.gates
    passages = [rng.randrange(1000, 9000) for _ in range(plan.gates)]
    total = int(plan.rate * plan.seconds)
    fevers: list[tuple[int, int, float, float]] = []
    print(json.dumps({"ready": True}), flush=True)
    if sys.stdin.readline().strip() != "go":
        conn.close()
        return {"sent": 0}
    sent = 0
    max_lag = 0.0
    start = time.monotonic()
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - start) * plan.rate) + 1)
        if due > sent:
            max_lag = max(max_lag, now - (start + sent / plan.rate))
            wall_ms = time.time_ns() // 1_000_000
            chunk = []
            for seq in range(sent, due):
                gate = seq % plan.gates
                fever = not last_fever[gate] and rng.random() < plan.fever_share
                last_fever[gate] = fever
                value = (round(rng.uniform(37.4, 39.0), 1) if fever
                         else round(rng.uniform(36.0, 37.2), 1))
                passages[gate] += 1
                # a device clock: strictly increasing milliseconds per gate
                ts = last_ms[gate] = max(wall_ms, last_ms[gate] + 1)
                body = (b'{"body_temp_c":%.1f,"mask":%d,"passage_count":%d,"seq":%d,"ts":%d}'
                        % (value, seq % 7 != 0, passages[gate], seq, ts))
                chunk.append(publish_packet(topics[gate], body))
                if fever:
                    fevers.append((gate, seq, value, now))
            conn.sock.sendall(b"".join(chunk))
            sent = due
        pause = start + sent / plan.rate - time.monotonic()
        time.sleep(max(pause, TICK_S))
    last = time.monotonic()
    conn.close()
    out.write_text(json.dumps({"fevers": fevers}))
    return {"sent": sent, "fevers": len(fevers), "first": start, "last": last,
            "max_lag_s": max_lag, "achieved_per_s": sent / max(last - start, 1e-9)}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gates")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--gates", type=int, default=200)
    p.add_argument("--prefix", default="bench/gates")
    p.add_argument("--rate", type=float, required=True, help="messages/s, all gates together")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--fever-share", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--client-id", default="bench-gates")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    plan = Plan(a.port, a.gates, a.prefix, a.rate, a.seconds, a.fever_share, a.seed,
                a.client_id)
    print(json.dumps(run(plan, a.out)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
