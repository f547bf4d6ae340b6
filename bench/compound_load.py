"""A compound's ordinary day on MQTT: `python -m bench.compound_load --port P --site S ...`.

Each of the footprint benchmark's 1,000 devices publishes what its kind sends, at the rate a
compound's devices do: smoke sensors a reading every few seconds (temperature, obscuration,
battery), the temperature gates that people pass in the morning peak a passage each, door
controllers an open and a close now and then, manhole covers and wireless elder buttons a
heartbeat. Now and then an elder presses SOS, and once a smoke sensor
goes into alarm and clears. Each SOS press is timed from its publish to the retained
`firing` alert arriving on this process's own subscription.

It waits for `go` on stdin, has every device report once and says so, then keeps the
periodic traffic going and takes commands on stdin, each answered with one JSON line:
`sos N` (N presses on distinct buttons, one after the other, each timed to its alert),
`fire` (a smoke sensor in alarm, then clear 5 s later), `end` (what it sent per kind). It
stops by itself after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from bench.footprint import devices as footprint_devices

NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

Body = Callable[[random.Random, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Rates:
    """Seconds between two messages of one device, per kind (0: silent)."""

    smoke_s: float = 5.0
    gate_s: float = 10.0  # a passage at each active gate
    active_gates: int = 50
    idle_gate_s: float = 240.0  # the others report they are there, within their 300 s
    door_s: float = 500.0  # a passage at each of 50 doors: 8,640 a day, two events each
    door_open_s: tuple[float, float] = (3.0, 8.0)  # how long a passage keeps a door open
    manhole_s: float = 60.0
    button_s: float = 240.0  # heartbeat, within the configured 300 s


class _Rooms:
    """Each smoke sensor's room temperature: a slow random walk, read to 0.1 °C as sensors do
    (independent noise per report would be a rate of rise no room has)."""

    def __init__(self) -> None:
        self._now: dict[str, float] = {}

    def __call__(self, rng: random.Random, topic: str) -> dict[str, Any]:
        room = self._now.get(topic, 21.0 + rng.uniform(0, 3)) + rng.gauss(0, 0.02)
        self._now[topic] = room
        return {"temperature_c": round(room, 1),
                "obscuration_pct_ft": round(rng.uniform(0, 0.05), 3),
                "battery_pct": rng.randint(80, 100)}


def _gate(rng: random.Random, topic: str) -> dict[str, Any]:
    return {"body_temp_c": round(rng.gauss(36.4, 0.25), 1), "mask": 1,
            "passage_count": rng.randint(1, 10_000)}


def _manhole(rng: random.Random, topic: str) -> dict[str, Any]:
    return {"tilt_deg": round(rng.uniform(0, 1.5), 1), "battery_pct": rng.randint(70, 100)}


def _button(rng: random.Random, topic: str) -> dict[str, Any]:
    return {"battery_pct": rng.randint(70, 100), "linkquality": rng.randint(80, 255)}


def _door(rng: random.Random, topic: str, state: str = "closed") -> dict[str, Any]:
    return {"door": state, "door_open": int(state == "open")}


async def _passages(client: aiomqtt.Client, topics: list[str], rates: Rates,
                    sent: Counter[str], rng: random.Random) -> None:
    """People passing the doors: each door opened once per `rates.door_s`, spread evenly,
    and closed a few seconds later. (A door propped open past the held-open rule's two
    minutes is an alert, as rare as the SOS presses measured apart.)"""
    if rates.door_s <= 0 or not topics:
        return
    closing: set[asyncio.Task[None]] = set()

    async def close(topic: str) -> None:
        await asyncio.sleep(rng.uniform(*rates.door_open_s))
        await client.publish(topic, json.dumps(_door(rng, topic, "closed")), qos=1)
        sent["access"] += 1

    gap = rates.door_s / len(topics)
    start = time.monotonic() + rng.uniform(0, gap)
    index = 0
    while True:
        await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
        topic = topics[index % len(topics)]
        await client.publish(topic, json.dumps(_door(rng, topic, "open")), qos=1)
        sent["access"] += 1
        task = asyncio.create_task(close(topic))
        closing.add(task)
        task.add_done_callback(closing.discard)
        index += 1


async def _periodic(client: aiomqtt.Client, topics: list[str], every_s: float, body: Body,
                    sent: Counter[str], kind: str, rng: random.Random) -> None:
    """Each topic once per `every_s`, spread evenly over the period."""
    if every_s <= 0 or not topics:
        return
    gap = every_s / len(topics)
    start = time.monotonic() + rng.uniform(0, gap)
    index = 0
    while True:
        await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
        topic = topics[index % len(topics)]
        await client.publish(topic, json.dumps(body(rng, topic)), qos=1)
        sent[kind] += 1
        index += 1


class _Alarms:
    """SOS presses on buttons not pressed before, and a smoke sensor's alarm and clear."""

    def __init__(self, client: aiomqtt.Client, buttons: list[tuple[str, str]],
                 smoke: tuple[str, str], sent: Counter[str],
                 arrivals: dict[str, asyncio.Future[float]]) -> None:
        self._client = client
        self._buttons = iter(buttons)
        self._smoke = smoke
        self._sent = sent
        self._arrivals = arrivals
        self._room = _Rooms()

    async def sos(self, presses: int) -> list[float]:
        """Seconds from each press to its `firing` alert (inf: none within 10 s)."""
        latencies = []
        for _ in range(presses):
            device, topic = next(self._buttons)
            arrived = asyncio.get_running_loop().create_future()
            self._arrivals[device] = arrived
            pressed = time.monotonic()
            await self._client.publish(topic, json.dumps({"action": "single"}), qos=1)
            self._sent["sos"] += 1
            try:
                async with asyncio.timeout(10.0):  # wait_for on 3.11 can swallow the stop
                    latencies.append(await arrived - pressed)
            except TimeoutError:
                latencies.append(float("inf"))
        return latencies

    async def fire(self) -> None:
        topic = self._smoke[1]
        alarm = {"alarm": True, **self._room(random.Random(1), topic)}
        await self._client.publish(topic, json.dumps(alarm), qos=1)
        await asyncio.sleep(5)
        clear = {"alarm": False, **self._room(random.Random(2), topic)}
        await self._client.publish(topic, json.dumps(clear), qos=1)
        self._sent["fire"] += 2


async def _watch(client: aiomqtt.Client, arrivals: dict[str, asyncio.Future[float]]) -> None:
    async for message in client.messages:
        if message.retain or not isinstance(message.payload, bytes):
            continue
        try:
            alert = json.loads(message.payload)
        except ValueError:
            continue
        waiting = arrivals.get(str(alert.get("device")))
        if alert.get("state") == "firing" and waiting is not None and not waiting.done():
            waiting.set_result(time.monotonic())


async def run(port: int, site: str, count: int, seconds: float, rates: Rates) -> dict[str, Any]:
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for device in footprint_devices(count):
        by_kind.setdefault(device["kind"], []).append((device["id"], device["mqtt"]["topic"]))
    rng = random.Random(11)
    sent: Counter[str] = Counter()
    arrivals: dict[str, asyncio.Future[float]] = {}

    def topics(kind: str) -> list[str]:
        return [topic for _, topic in by_kind.get(kind, [])]

    # the devices' publisher sends each message as it is made (Nagle's algorithm off, as
    # the broker and the gateway have it): with it on, a press written right after the
    # PUBACK of an alert received here waited for the broker's delayed TCP acknowledgement
    # of it, about 40 ms
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-compound-day",
                              max_inflight_messages=64,
                              socket_options=[NO_DELAY]) as client:
        client.pending_calls_threshold = 1000
        await client.subscribe(f"sc/{site}/alerts/elder.sos/+", qos=1)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        # every device reports once first, as on any day after the gateway's start: the
        # measured period is the steady state, not the devices coming online
        hello: dict[str, Body] = {"smoke": _Rooms(), "temp_gate": _gate, "access": _door,
                                  "manhole": _manhole, "elder_button": _button}
        for kind, body in hello.items():
            for topic in topics(kind):
                await client.publish(topic, json.dumps(body(rng, topic)), qos=1)
        print(json.dumps({"hello": sum(len(v) for v in by_kind.values())}), flush=True)
        tasks = [
            _periodic(client, topics("smoke")[1:], rates.smoke_s, _Rooms(), sent, "smoke", rng),
            _periodic(client, topics("temp_gate")[:rates.active_gates], rates.gate_s, _gate,
                      sent, "temp_gate", rng),
            _periodic(client, topics("temp_gate")[rates.active_gates:], rates.idle_gate_s,
                      _gate, sent, "temp_gate", rng),
            _passages(client, topics("access"), rates, sent, rng),
            _periodic(client, topics("manhole"), rates.manhole_s, _manhole, sent, "manhole", rng),
            _periodic(client, topics("elder_button"), rates.button_s, _button, sent,
                      "elder_button", rng),
            _watch(client, arrivals),
        ]
        alarms = _Alarms(client, by_kind["elder_button"], by_kind["smoke"][0], sent, arrivals)
        started = time.monotonic()
        running = [asyncio.ensure_future(t) for t in tasks]
        try:
            async with asyncio.timeout(seconds):
                await _commands(alarms, running)
        except TimeoutError:
            pass  # the period is over: stop as after `end`
        finally:
            for task in running:
                task.cancel()
            # bounded: a task whose stop a library swallowed is left behind, not waited for
            await asyncio.wait(running, timeout=15)
        for task in running:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        elapsed = time.monotonic() - started
        result = {"sent": dict(sent), "seconds": elapsed}
        # said before the client disconnects: a disconnect that never completes (the
        # broker busy, paho waiting for the socket) must not hold the figures back
        print(json.dumps(result), flush=True)
    return result


async def _commands(alarms: _Alarms, running: Sequence[asyncio.Future[Any]]) -> None:
    """`sos N`, `fire` and `end` from stdin, each answered with a JSON line."""
    while True:
        read = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        await asyncio.wait([read, *running], return_when=asyncio.FIRST_COMPLETED)
        for task in running:
            if task.done():
                task.result()  # a periodic task failed: its exception ends the run
        word, _, arg = (await read).strip().partition(" ")
        if word == "sos":
            print(json.dumps({"sos_latencies_s": await alarms.sos(int(arg))}), flush=True)
        elif word == "fire":
            await alarms.fire()
            print(json.dumps({"fire": True}), flush=True)
        elif word in ("end", ""):
            return
        else:
            raise SystemExit(f"unknown command {word!r}")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compound_load")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--smoke-s", type=float, default=Rates().smoke_s)
    args = p.parse_args()
    rates = Rates(smoke_s=args.smoke_s)
    asyncio.run(run(args.port, args.site, args.devices, args.seconds, rates))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
