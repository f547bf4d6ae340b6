"""The city's oracle: what each compound accepted (its journal), against what the city
stream holds (read back in stream order) and what the central store has, counted per series
and timestamp. An observer outside the gateways and the hubs."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field

from nats.js import api
from nats.js.client import JetStreamContext

from gateway.core.model import DeviceEvent
from gateway.ops.store_query import export


@dataclass
class CityVerdict:
    accepted: int
    lost_store: int
    store_duplicates: int
    stream_same_id: int  # copies of one record id in the stream beyond the first
    order_violations: int  # a device's first copies in the stream out of acceptance order
    extra: dict[str, int] = field(default_factory=dict)

    def print(self, scenario: str) -> None:
        print(f"[{scenario}] accepted alarms={self.accepted} lost(store)={self.lost_store} "
              f"store duplicates={self.store_duplicates} stream copies={self.stream_same_id} "
              f"order violations={self.order_violations} {self.extra}")


async def stream_records(js: JetStreamContext, stream: str, district: str
                         ) -> list[tuple[str, dict[str, object]]]:
    """Every message of `district` in the stream, in stream order: (subject, payload)."""
    sub = await js.pull_subscribe(
        f"sc.{district}.>", stream=stream,
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE,
                                  deliver_policy=api.DeliverPolicy.ALL,
                                  inactive_threshold=30.0))
    out: list[tuple[str, dict[str, object]]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=0.5)
            except TimeoutError:
                if (await sub.consumer_info()).num_pending == 0:
                    break
                continue
            out += [(m.subject, json.loads(m.data)) for m in msgs]
    finally:
        await sub.unsubscribe()
    return out


async def judge_compound(accepted: list[DeviceEvent],
                         streamed: list[tuple[str, dict[str, object]]], store_url: str,
                         district: str, site: str) -> CityVerdict:
    mine = [payload for subject, payload in streamed
            if subject.split(".")[2] == site and payload.get("rec") == "event"]
    copies: dict[object, int] = defaultdict(int)
    for payload in mine:
        copies[payload["id"]] += 1
    order = {e.id: n for n, e in enumerate(accepted)}
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[object] = set()
    for payload in mine:
        record_id = payload["id"]
        if record_id in order and record_id not in seen:
            seen.add(record_id)
            first[str(payload.get("device"))].append(order[str(record_id)])
    violations = sum(1 for seq in first.values() for a, b in itertools.pairwise(seq) if b < a)
    series = await asyncio.to_thread(
        export, store_url, f'sc_event_count{{district="{district}",site="{site}"}}')
    stored: dict[tuple[str, int], int] = defaultdict(int)
    for s in series:
        for ts in s.timestamps:
            stored[(s.labels["device"], ts)] += 1
    wanted = {(e.device, e.ts) for e in accepted}
    return CityVerdict(
        accepted=len(accepted),
        lost_store=sum(1 for key in wanted if key not in stored),
        store_duplicates=sum(n - 1 for n in stored.values()) + len(stored.keys() - wanted),
        stream_same_id=sum(n - 1 for n in copies.values()),
        order_violations=violations,
        extra={"streamed": len(mine)})
