"""Idle connections from many addresses and a body that never ends on the HTTP push port,
while an elder presses an MQTT SOS button and a door controller pushes: the alert comes as
quickly as when the port is quiet, the push is accepted, the connections stay within their
caps and are closed, and the log stays small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import aiomqtt
import pytest

from drivers.http_push import HttpPushReceiver
from drivers.profile import ProfileLibrary
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.supervisor import Gateway
from simulators.http_pusher import HttpPusher
from tests.faults.burst import verdict_after
from tests.faults.oracle import Observer
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site

TOKEN = "door-token-0123456789abcdef"
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 7)]  # the flood; devices push from 127.0.0.1
PER_ADDRESS = 30
LIMITS = {"header_timeout_s": 1.0, "idle_timeout_s": 2.0, "body_timeout_s": 0.5,
          "max_connections": 12, "max_connections_per_address": 4}
SLACK_S = 1.0  # an alert during the flood may take this much longer than without it


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _idle(port: int, address: str, partial: bool) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=(address, 0))
    if partial:  # a request head that never ends
        writer.write(b"POST /push/door-1 HTTP/1.1\r\nHost: gw\r\n")
    return reader, writer


async def _closed_by_server(stream: Stream) -> None:
    reader, writer = stream
    with contextlib.suppress(ConnectionError):
        assert await reader.read() == b""
    writer.close()


async def _endless_body(port: int) -> bytes:
    """A push with a valid token whose chunked body never ends; what the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=("127.0.0.7", 0))
    writer.write(b"POST /push/door-1 HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() +
                 b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = asyncio.ensure_future(reader.read())
    with contextlib.suppress(ConnectionError):
        while not answer.done():
            writer.write(b"1\r\n \r\n")
            await asyncio.sleep(0.05)
    writer.close()
    return await answer


async def test_idle_connections_and_endless_bodies_hold_up_no_alarm_and_no_push(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = unique_site("fault-push")
    port = free_port()
    topics = {sos: f"vendor/{site}/{sos}" for sos in ("sos-1", "sos-2")}
    door = {"id": "door-1", "kind": "access", "transport": "http",
            "profile": "http-access-controller", "http": {"token": TOKEN}}
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         store_url=victoria.url, shutdown_timeout_s=0.5,
                         http={"host": "127.0.0.1", "port": port, **LIMITS},
                         devices=[door, *(sos_mqtt(sos, topic) for sos, topic in topics.items())])
    async with Observer(mosquitto.port, site) as observer, running(
        Gateway(config)
    ) as gateway, Watcher(mosquitto.port, f"sc/{site}/alerts/#", "duty") as duty, \
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"src-{site}") as source, \
            HttpPusher(ProfileLibrary().get("http-access-controller"), f"http://127.0.0.1:{port}",
                       "door-1", TOKEN) as pusher:
        (receiver,) = [d for d in gateway.drivers if isinstance(d, HttpPushReceiver)]
        await asyncio.wait_for(receiver.ready.wait(), 10)
        connections = receiver.connections
        assert connections is not None
        await eventually(lambda: gateway.connected, what="connected")

        async def sos_latency(sos: str) -> float:
            pressed = time.monotonic()
            await source.publish(topics[sos], b'{"action": "single"}', qos=1)
            await duty.next(lambda s: s.topic.endswith(f"elder.sos/{sos}"), timeout=30)
            return time.monotonic() - pressed

        quiet = await sos_latency("sos-1")
        logged_before = len(caplog.records)
        flood = [await _idle(port, address, partial=n % 2 == 1)
                 for address in ADDRESSES for n in range(PER_ADDRESS)]
        assert connections.open <= LIMITS["max_connections"]
        endless = asyncio.ensure_future(_endless_body(port))
        noisy = await sos_latency("sos-2")
        pushed = time.monotonic()
        result = await pusher.push({"event.code": 20})
        assert (result.status, time.monotonic() - pushed < 2.0) == (200, True)
        assert noisy <= quiet + SLACK_S, f"SOS took {noisy:.2f} s, {quiet:.2f} s when quiet"
        # the endless body is answered when its time is up, and its connection closed
        answer = await asyncio.wait_for(endless, LIMITS["body_timeout_s"] + 5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
        # every idle connection is closed by the gateway: refused, evicted or timed out
        async with asyncio.timeout(LIMITS["header_timeout_s"] + 5):
            await asyncio.gather(*(_closed_by_server(stream) for stream in flood))
        await eventually(lambda: connections.open == 0, what="no connection left")
        assert connections.open <= LIMITS["max_connections"]
        refused = gateway.counters.get("http_connections_refused")
        closed = gateway.counters.get("http_connections_closed")
        assert refused >= len(flood) - 3 * LIMITS["max_connections"]
        assert refused + closed >= len(flood)
        assert gateway.counters.get("rejected", device="door-1", reason="body_timeout") == 1
        # one line per kind of trouble, not one per connection
        flood_lines = [r for r in caplog.records[logged_before:]
                       if r.name.startswith(("drivers.http", "asyncio", "aiohttp"))]
        assert len(flood_lines) <= 6, [r.getMessage() for r in flood_lines]
        verdict = await verdict_after(gateway, observer, victoria.url, site)
    verdict.extra["connections"] = len(flood)
    verdict.print("push port flooded")
    assert verdict.accepted == 3  # two SOS presses and the forced door
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
