"""NB-IoT platforms whose 200 gets lost on the way back: every second answer of the gateway
is replaced by a 504 (a reverse proxy timing out), so the platform pushes the same message
again. An observer outside the gateway counts what reached MQTT: nothing lost, nothing
twice (same id or a new one), in order.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.ops.private_servers import Mosquitto, free_port
from gateway.supervisor import Gateway
from simulators.ctwing_platform import CtwingPlatform
from simulators.onenet_platform import OneNetPlatform
from tests.faults.oracle import Observer, accepted_alarms, mqtt_copies
from tests.helpers import eventually, intake_open, make_config, running, unique_site
from tests.http_server import serving

ONENET_TOKEN = "onenet-instance-token"
CTWING_TOKEN = "ctwing-subscription-secret-0123"
PUSHES = 10  # per platform


class LosingProxy:
    """Forwards a platform's push to the gateway; every second answer is lost."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lose = itertools.cycle([True, False])
        self.lost = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with aiohttp.ClientSession() as session, session.post(
                f"{self.upstream}{request.path_qs}", data=body,
                headers={"Content-Type": "application/json"}) as answer:
            status, text = answer.status, await answer.read()
        if status == 200 and next(self._lose):
            self.lost += 1
            return web.Response(status=504, text="upstream timed out")
        return web.Response(status=status, body=text)


async def test_lost_answers_make_retries_that_are_journalled_once(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("lost200")
    port = free_port()
    devices = [
        {"id": "smoke-o", "kind": "smoke", "transport": "onenet", "profile": "onenet-smoke",
         "onenet": {"device_name": "smoke-0001"}},
        {"id": "smoke-c", "kind": "smoke", "transport": "ctwing", "profile": "ctwing-smoke",
         "ctwing": {"device_id": "acf7baaee65e431eadfb8f5fe50e8b81"}},
    ]
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, devices=devices,
                         http={"host": "127.0.0.1", "port": port},
                         onenet={"token": ONENET_TOKEN}, ctwing={"token": CTWING_TOKEN},
                         shutdown_timeout_s=0.5)
    proxy = LosingProxy(f"http://127.0.0.1:{port}")
    proxied = f"http://127.0.0.1:{proxy.port}"
    async with running(Gateway(config)) as gateway, Observer(
            mosquitto.port, site, persistent=False) as observer, serving(
            proxy.port, "/{path:.*}", proxy.handle), OneNetPlatform(
            f"{proxied}/onenet", ONENET_TOKEN, retry_scale=0) as onenet, CtwingPlatform(
            f"{proxied}/ctwing/{CTWING_TOKEN}", retry_s=0) as ctwing:
        await intake_open(gateway)
        for n in range(PUSHES):
            # OneNET's profile reports the alarm on a change of state: alternate
            state = {"smoke_state": 1 - n % 2}
            sent = await onenet.push(onenet.property_notify("p", "smoke-0001", state))
            assert sent.statuses[-1] == 200
            report = ctwing.data_report("acf7baaee65e431eadfb8f5fe50e8b81", {
                "serviceId": "notification", "serviceData": {"Alarm_Status": 1}},
                packet=1000 + n)
            assert (await ctwing.push(report)).statuses[-1] == 200
        assert proxy.lost == 2 * PUSHES  # every message's first answer was lost
        assert gateway.counters.get("redelivered", device="smoke-o") == PUSHES
        assert gateway.counters.get("redelivered", device="smoke-c") == PUSHES
        accepted = await accepted_alarms(gateway.journal)
        # smoke-o: alarm at every other push; smoke-c: an alarm at every push
        assert len(accepted) == PUSHES // 2 + PUSHES

        async def all_seen() -> bool:
            return mqtt_copies(accepted, observer.events).lost == 0

        await eventually(all_seen, what="every accepted alarm on MQTT")
        await eventually(lambda: gateway.mqtt_sink.cursor == gateway.journal.last_seq,
                         what="MQTT caught up")
    copies = mqtt_copies(accepted, [e for e in observer.events if e.type == "alarm"])
    assert copies.lost == 0
    assert copies.same_id == 0
    assert copies.new_id == 0
    assert copies.order_violations == 0
