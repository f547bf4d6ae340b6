"""A flood of 1,000 connections on the HTTP push port, a fifth of them pushes of a faulty
temperature gate (with its valid token) whose bodies never end: a door controller's
forced-door alarm still gets its 200 and alerts, because pushes of alarm devices
(broker.alarm_lane_kinds) have slots the others cannot take. Without them, the gate's
pushes hold every connection the port admits until their body times out, and the door's
connection is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from drivers.http_push import HttpPushReceiver
from drivers.profile import ProfileLibrary
from gateway.ops.private_servers import Mosquitto, free_port
from gateway.supervisor import Gateway
from simulators.http_pusher import HttpPusher
from tests.helpers import Watcher, eventually, make_config, running, unique_site

DOOR_TOKEN = "door-token-0123456789abcdef"
GATE_TOKEN = "gate-token-0123456789abcdef"
CONNECTIONS = 1_000
PUSHES = 200  # of them the gate's endless pushes, after the rest (idle)
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 22)]
LIMITS = {"header_timeout_s": 5.0, "idle_timeout_s": 5.0, "body_timeout_s": 5.0,
          "max_connections": 128, "max_connections_per_address": 64, "max_pushes": 32,
          "alarm_pushes_reserved": 8}

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open(port: int, n: int) -> Stream | None:
    try:
        return await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(ADDRESSES[n % len(ADDRESSES)], 0))
    except OSError:
        return None


async def _endless_push(stream: Stream) -> None:
    _, writer = stream
    with contextlib.suppress(ConnectionError):
        writer.write(b"POST /push/gate-1 HTTP/1.1\r\nHost: gw\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer " + GATE_TOKEN.encode() +
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
        await writer.drain()


async def test_an_alarm_push_has_its_path_through_a_flood_of_connections(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("push-flood")
    port = free_port()
    door = {"id": "door-1", "kind": "access", "transport": "http",
            "profile": "http-access-controller", "http": {"token": DOOR_TOKEN}}
    gate = {"id": "gate-1", "kind": "temp_gate", "transport": "http",
            "profile": "http-temp-gate", "http": {"token": GATE_TOKEN}}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         shutdown_timeout_s=0.5, devices=[door, gate],
                         http={"host": "127.0.0.1", "port": port, **LIMITS})
    streams: list[Stream] = []
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/access.forced_open/door-1", "duty") as duty, \
            HttpPusher(ProfileLibrary().get("http-access-controller"),
                       f"http://127.0.0.1:{port}", "door-1", DOOR_TOKEN) as pusher:
        (receiver,) = [d for d in gateway.drivers if isinstance(d, HttpPushReceiver)]
        await asyncio.wait_for(receiver.ready.wait(), 10)
        connections = receiver.connections
        assert connections is not None
        try:
            idle = await asyncio.gather(*(_open(port, n) for n in range(CONNECTIONS - PUSHES)))
            streams += [s for s in idle if s is not None]
            pushing = [s for s in await asyncio.gather(*(
                _open(port, n) for n in range(PUSHES))) if s is not None]
            streams += pushing
            await asyncio.gather(*(_endless_push(s) for s in pushing))
            await eventually(lambda: receiver.slots.in_use == LIMITS["max_pushes"]
                             - LIMITS["alarm_pushes_reserved"], what="the gate's pushes")
            # the gate's pushes beyond its slots were answered 503 at once (those admitted:
            # the port holds max_connections, evicting the longest idle)
            await eventually(lambda: gateway.counters.get("http_pushes_busy", cls="other")
                             >= 64, what="503s")
            assert connections.open <= LIMITS["max_connections"]
            pushed = time.monotonic()
            result = await pusher.push({"event.code": 20})  # forced open
            took = time.monotonic() - pushed
            assert result.status == 200, result
            assert took < 1.0, f"the alarm push took {took:.2f} s"
            await duty.next(lambda s: b'"firing"' in s.payload, timeout=5)
        finally:
            for _, writer in streams:
                writer.close()
    assert gateway.counters.get("http_pushes_busy", cls="alarm") == 0
    assert gateway.counters.get("events_accepted", cls="alarm") == 1
