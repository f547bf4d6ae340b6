"""The oracle of the fault scenarios: what was accepted, what reached MQTT and the store."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import msgspec

from gateway.core.model import DeliveryClass, DeviceEvent
from gateway.journal import Journal
from gateway.ops.store_query import export


class Observer:
    """A subscriber that never gives up: reconnects at once and records every event id.

    With `topic_filter`, it records every message on that filter instead (in `messages`).
    """

    def __init__(self, port: int, site: str, topic_filter: str | None = None, *,
                 persistent: bool = True) -> None:
        self._port = port
        self._site = site
        self._filter = topic_filter or f"sc/{site}/+/+/event"
        self._events = topic_filter is None
        self._persistent = persistent
        self.events: list[DeviceEvent] = []
        self.messages: list[tuple[str, bytes]] = []
        self.arrived: list[float] = []  # time.monotonic() of each of `messages`
        self.connected = asyncio.Event()
        self.connections = 0  # subscribed this many times
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        self._task = asyncio.create_task(self._run(), name="oracle.observer")
        await asyncio.wait_for(self.connected.wait(), 10)
        if self._persistent:
            # a persistent session: a broker with persistence keeps the subscription across
            # its own SIGKILL, so nothing published before the observer reconnects is missed
            await asyncio.sleep(1.5)  # the broker's autosave interval is 1 s
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        client = aiomqtt.Client("127.0.0.1", self._port, identifier=f"oracle-{self._site}",
                                clean_session=not self._persistent)
        while True:
            try:
                async with client:
                    await client.subscribe(self._filter, qos=1)
                    self.connections += 1
                    self.connected.set()
                    async for message in client.messages:
                        if not isinstance(message.payload, bytes):
                            continue
                        self.messages.append((str(message.topic), message.payload))
                        self.arrived.append(time.monotonic())
                        if self._events:
                            self.events.append(
                                msgspec.json.decode(message.payload, type=DeviceEvent))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.02)  # far quicker than the gateway's reconnect


@dataclass
class Verdict:
    accepted: int
    lost_mqtt: int
    lost_store: int
    store_duplicates: int
    order_violations: int
    extra: dict[str, int] = field(default_factory=dict)

    def print(self, scenario: str) -> None:
        print(f"[{scenario}] accepted alarms={self.accepted} lost(mqtt)={self.lost_mqtt} "
              f"lost(store)={self.lost_store} store duplicates={self.store_duplicates} "
              f"order violations={self.order_violations} {self.extra}")


async def accepted_alarms(journal: Path | Journal) -> list[DeviceEvent]:
    """Every alarm-class event the gateway journalled, i.e. accepted: from the journal file
    of a gateway that stopped, or through a running gateway's own journal (it holds the
    file for itself)."""
    if isinstance(journal, Path):
        async with Journal(journal) as opened:
            return await _alarms_in(opened)
    return await _alarms_in(journal)


async def _alarms_in(journal: Journal) -> list[DeviceEvent]:
    out: list[DeviceEvent] = []
    upto = 0
    while True:
        batch = await journal.read_after(upto, 5000)
        if batch.upto <= upto:
            return out
        out += [e.record for e in batch.entries if isinstance(e.record, DeviceEvent)
                and e.record.cls is DeliveryClass.ALARM]
        upto = batch.upto


@dataclass(frozen=True)
class MqttCopies:
    """What an MQTT observer saw of the accepted records."""

    lost: int  # accepted, never seen
    same_id: int  # copies beyond the first of an accepted id
    new_id: int  # seen with an id the gateway never accepted
    order_violations: int  # first deliveries of a device out of acceptance order


def mqtt_copies(accepted: list[DeviceEvent], observed: list[DeviceEvent]) -> MqttCopies:
    ids = {e.id for e in accepted}
    seen: dict[str, int] = defaultdict(int)
    for e in observed:
        seen[e.id] += 1
    order = {e.id: n for n, e in enumerate(accepted)}
    first: dict[str, list[int]] = defaultdict(list)  # device -> acceptance order, as seen
    done: set[str] = set()
    for e in observed:
        if e.id in order and e.id not in done:
            done.add(e.id)
            first[e.device].append(order[e.id])
    violations = sum(1 for seq in first.values() for a, b in itertools.pairwise(seq) if b < a)
    return MqttCopies(
        lost=sum(1 for i in ids if i not in seen),
        same_id=sum(n - 1 for i, n in seen.items() if i in ids),
        new_id=sum(n for i, n in seen.items() if i not in ids),
        order_violations=violations)


async def judge(accepted: list[DeviceEvent], observed: list[DeviceEvent], store_url: str,
                site: str) -> Verdict:
    seen_ids = {e.id for e in observed}
    lost_mqtt = sum(1 for e in accepted if e.id not in seen_ids)
    # order per device: first deliveries come in the order the gateway accepted them
    first: dict[str, list[int]] = defaultdict(list)
    done: set[str] = set()
    for e in observed:
        if e.id not in done:
            done.add(e.id)
            first[e.device].append(e.ts)
    order_violations = sum(
        1 for tss in first.values() for a, b in itertools.pairwise(tss) if b <= a)
    series = await asyncio.to_thread(export, store_url, f'sc_event_count{{site="{site}"}}')
    stored: dict[tuple[str, int], int] = defaultdict(int)
    for s in series:
        for ts in s.timestamps:
            stored[(s.labels["device"], ts)] += 1
    lost_store = sum(1 for e in accepted if (e.device, e.ts) not in stored)
    duplicates = sum(n - 1 for n in stored.values()) + max(0, len(stored) - len(
        {(e.device, e.ts) for e in accepted}))
    return Verdict(len(accepted), lost_mqtt, lost_store, duplicates, order_violations,
                   {"mqtt_messages": len(observed)})
