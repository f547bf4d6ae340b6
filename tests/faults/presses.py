"""An oracle that traces every press by the sequence number its source gave it.

The source puts its own number in each payload (`duration_ms`, which the gateway carries
into the event's fields); the oracle matches what the MQTT observer and the store hold
against what was sent, without looking into the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from gateway.core.model import DeviceEvent
from gateway.ops.store_query import export

SEQ = "duration_ms"  # the payload key that carries the source's sequence number


def press_payload(seq: int) -> bytes:
    return b'{"action": "single", "%s": %d}' % (SEQ.encode(), seq)


def numbered_sos(device: str, topic: str) -> dict[str, object]:
    """An MQTT SOS button whose presses carry their sequence number into the event."""
    return {"id": device, "kind": "elder_button", "transport": "mqtt",
            "mqtt": {"topic": topic, "event_key": "action", "events": {"single": "press"},
                     "readings": [SEQ]}}


@dataclass
class PressVerdict:
    sent: int
    lost_mqtt: int  # a press no event on MQTT stands for
    lost_store: int  # a press without its sample in the store
    new_id_duplicates: int  # a press that became two records (two ids)
    same_id_duplicates: int  # one record delivered again on MQTT (allowed: same id)
    store_duplicates: int  # samples in the store beyond one per press
    order_violations: int  # a device's presses first delivered out of their order
    extra: dict[str, int] = field(default_factory=dict)

    def print(self, scenario: str) -> None:
        print(f"[{scenario}] sent={self.sent} lost(mqtt)={self.lost_mqtt} "
              f"lost(store)={self.lost_store} duplicated(new id)={self.new_id_duplicates} "
              f"duplicated(same id)={self.same_id_duplicates} "
              f"store duplicates={self.store_duplicates} "
              f"order violations={self.order_violations} {self.extra}")

    @property
    def clean(self) -> bool:
        return (self.lost_mqtt, self.lost_store, self.new_id_duplicates,
                self.store_duplicates, self.order_violations) == (0, 0, 0, 0, 0)


async def judge_presses(sent: dict[str, list[int]], observed: list[DeviceEvent],
                        store_url: str, site: str) -> PressVerdict:
    """`sent`: per device, the sequence numbers its source published, in order."""
    ids: dict[tuple[str, int], set[str]] = defaultdict(set)
    deliveries: Counter[str] = Counter()
    first: dict[str, list[int]] = defaultdict(list)
    for event in observed:
        seq = event.fields.get(SEQ)
        if not isinstance(seq, int | float):
            continue
        key = (event.device, int(seq))
        if event.id not in ids[key] and not ids[key]:
            first[event.device].append(int(seq))
        ids[key].add(event.id)
        deliveries[event.id] += 1
    wanted = {(device, seq) for device, seqs in sent.items() for seq in seqs}
    series = await asyncio.to_thread(export, store_url, f'sc_event_count{{site="{site}"}}')
    samples: Counter[str] = Counter()
    for s in series:
        samples[s.labels["device"]] += len(s.timestamps)
    return PressVerdict(
        sent=len(wanted),
        lost_mqtt=sum(1 for key in wanted if not ids.get(key)),
        lost_store=sum(max(0, len(seqs) - samples[device]) for device, seqs in sent.items()),
        new_id_duplicates=sum(len(found) - 1 for found in ids.values() if found),
        same_id_duplicates=sum(n - 1 for n in deliveries.values()),
        store_duplicates=sum(max(0, samples[device] - len(sent.get(device, ())))
                             for device in samples),
        order_violations=sum(1 for seqs in first.values()
                             for a, b in itertools.pairwise(seqs) if b <= a),
        extra={"mqtt_messages": len(observed)},
    )
