"""Open-loop load: `python -m bench.gates ...` is N temperature gates publishing passages.

Messages go round-robin over the gates at a fixed rate, whether or not the system under
test keeps up: every millisecond or so the packets that are due are written to the broker
in one go. A share of the readings are fevers (above 37.3 °C); a gate never sends two
fevers in a row, and its first reading is normal, so each fever is a new alert for a
stateful rule engine too.

With `--qos 1` every passage is a QoS 1 PUBLISH (packet ids 1..65535 in turn, as a device
with a large in-flight window would send them); a thread reads and counts the broker's
PUBACKs, so the publisher never waits for them (the load stays open loop), and the summary
says how many came back.

It prints `{"ready": true}` once connected, starts on a `go` line on stdin, and at the end
writes every fever it sent (gate, sequence number, value, time.monotonic() of sending) to
the --out file and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.mqtt_wire import PUBACK, Connection, WireError, publish_packet

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
    qos: int = 0


class Acks:
    """Counts the broker's PUBACKs on a thread of its own."""

    def __init__(self, conn: Connection) -> None:
        self.count = 0
        self._conn = conn
        self._thread = threading.Thread(target=self._read, name="gates.acks", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                kind, _, _ = self._conn.next_packet()
            except TimeoutError:
                continue  # nothing due: the socket's timeout is for the writer
            except (OSError, WireError):
                return  # the connection closed
            if kind == PUBACK:
                self.count += 1

    def wait(self, total: int, within_s: float) -> int:
        deadline = time.monotonic() + within_s
        while self.count < total and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.count


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
    acks = Acks(conn) if plan.qos else None
    cpu0 = time.process_time()  # the rig's own share of the machine, reported beside
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
                chunk.append(publish_packet(topics[gate], body, qos=plan.qos,
                                            mid=seq % 65535 + 1))
                if fever:
                    fevers.append((gate, seq, value, now))
            conn.sock.sendall(b"".join(chunk))
            sent = due
        pause = start + sent / plan.rate - time.monotonic()
        time.sleep(max(pause, TICK_S))
    last = time.monotonic()
    acked = acks.wait(sent, 30.0) if acks is not None else 0
    conn.close()
    out.write_text(json.dumps({"fevers": fevers}))
    return {"sent": sent, "fevers": len(fevers), "first": start, "last": last,
            "max_lag_s": max_lag, "achieved_per_s": sent / max(last - start, 1e-9),
            "acked": acked, "cpu_s": time.process_time() - cpu0}


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
    p.add_argument("--qos", type=int, choices=(0, 1), default=0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    plan = Plan(a.port, a.gates, a.prefix, a.rate, a.seconds, a.fever_share, a.seed,
                a.client_id, a.qos)
    print(json.dumps(run(plan, a.out)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
