"""An independent MQTT subscriber: `python -m bench.listener --port P --filter F --out FILE`.

It stamps every message it receives on the filter with time.monotonic() (the same
system-wide clock the publishers read), acknowledges QoS 1, skips the retained copies the
broker sends on subscribing, and when stdin closes (or says `stop`) writes
`[[time, topic, payload], ...]` to the --out file; a `count` line is answered with the
number received so far, and how many of them hold the --marker text. It runs in a process
of its own so that its work is counted neither to the system under test nor to the load.
"""

from __future__ import annotations

import argparse
import json
import selectors
import sys
import time
from pathlib import Path

from bench.mqtt_wire import PUBLISH, Connection, parse_publish, puback_packet


def listen(port: int, topic_filter: str, out: Path, client_id: str, marker: str = "") -> int:
    conn = Connection("127.0.0.1", port, client_id)
    conn.subscribe(topic_filter, qos=1)
    print(json.dumps({"ready": True}), flush=True)
    received: list[tuple[float, str, str]] = []
    selector = selectors.DefaultSelector()
    selector.register(conn.sock, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    conn.sock.setblocking(False)
    running = True
    now = time.monotonic()
    early = [(now, p) for p in conn.take_ready()]  # came in with the SUBACK
    while running:
        events = [] if early else selector.select(timeout=1.0)
        for key, _ in events:
            if key.fd == sys.stdin.fileno():
                line = sys.stdin.readline()
                if not line or line.strip() == "stop":
                    running = False
                elif line.strip() == "count":
                    marked = sum(1 for _, _, payload in received if marker in payload)
                    print(json.dumps({"received": len(received), "marked": marked}),
                          flush=True)
                continue
            try:
                data = conn.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            stamp = time.monotonic()
            if not data:
                running = False
                break
            early += [(stamp, p) for p in conn.reader.feed(data)]
        if early:
            packets, early = early, []
            acks = []
            for arrived, (kind, flags, body) in packets:
                if kind != PUBLISH:
                    continue
                message = parse_publish(flags, body)
                if message.qos:
                    acks.append(puback_packet(message.mid))
                if not message.retain:  # a retained copy is old news, not a delivery
                    received.append((arrived, message.topic,
                                     message.payload.decode(errors="replace")))
            if acks:
                conn.sock.setblocking(True)
                conn.sock.sendall(b"".join(acks))
                conn.sock.setblocking(False)
    conn.sock.setblocking(True)
    conn.close()
    out.write_text(json.dumps(received))
    return len(received)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.listener")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--filter", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--client-id", default="bench-listener")
    p.add_argument("--marker", default="", help="`count` also counts payloads holding this")
    a = p.parse_args()
    count = listen(a.port, a.filter, a.out, a.client_id, a.marker)
    print(json.dumps({"received": count}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
