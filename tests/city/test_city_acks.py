"""Acknowledging from the city board where a policy grants it, end to end on the real
cluster: the hub grants compound c1 (`board.ack_granted`) and c1's gateway lets the city
(`city_acks`); c2 is granted by neither. The board's acknowledgement of c1's SOS is
journalled at c1's gateway by `city:<user>` and comes back as the alert's new state; c2's is
refused by the board (403), and one sent to c2's gateway anyway is refused and counted
there. In real Chromium, the acknowledge button shows only on c1's alert."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from gateway.core.city import CityAck, CityAckAnswer, ack_subject
from gateway.core.model import AckCommand, AlertState
from gateway.ops.private_servers import Mosquitto, NatsCluster, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.city.rig import CityNames, city_connection, hub_config, running_hub
from tests.city.test_city_end_to_end import compound_config
from tests.console.browser import Browser
from tests.helpers import eventually, running

USER = "X-Remote-User"
CSRF = {"X-CSRF-Token": "city-board"}


async def _post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
            url, headers=headers, json={}) as response:
        return response.status, await response.json()


async def test_the_board_acknowledges_where_granted_and_is_refused_elsewhere(
        tmp_path: Path, nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics,
        mosquitto: Mosquitto) -> None:
    config = hub_config(nats_cluster, city, victoria.url, board={
        "ack_granted": [f"{city.district}/c1"], "user_header": USER})
    base = f"http://127.0.0.1:{config.board.port}"
    gateways = [Gateway(compound_config(tmp_path, site, nats_cluster, city, mosquitto.port,
                                        victoria.url, city_acks=site == "c1"))
                for site in ("c1", "c2")]
    browser = await asyncio.to_thread(Browser, "en")
    try:
        async with running_hub(config) as hub, running(gateways[0]), running(gateways[1]):
            alerts = hub.alerts
            assert alerts is not None
            for gateway in gateways:
                elder = SimulatedElder(gateway.pin_factory, 2, gateway.clock)
                elder.down()
                elder.up()
            await eventually(lambda: len(alerts.active()) == 2
                             and all(g.city_acks[0].listening.is_set() for g in gateways),
                             timeout=15, what="both SOS on the board, both gateways listening")
            key = {a.site: a.key for a in alerts.active()}

            # in Chromium, through the proxy that names the user: a button on c1's alert only
            await asyncio.to_thread(browser.driver.execute_cdp_cmd, "Network.enable", {})
            await asyncio.to_thread(browser.driver.execute_cdp_cmd,
                                    "Network.setExtraHTTPHeaders", {"headers": {USER: "zhang"}})
            await asyncio.to_thread(browser.get, base + "/")
            await asyncio.to_thread(browser.wait, lambda: browser.js(
                "return document.querySelectorAll('article.alert').length") == 2, 10.0,
                "both alerts")
            buttons = await asyncio.to_thread(browser.js, (
                "return [...document.querySelectorAll('button.ack-button')]"
                ".filter((b) => b.offsetParent !== null).map((b) => b.id);"))
            assert buttons == [f"ack-{key['c1']}"]
            assert "zhang" in await asyncio.to_thread(browser.text, "#who")

            # nobody named, or a request a page of another site could make: refused
            assert (await _post(f"{base}/api/alerts/{key['c1']}/ack", CSRF))[0] == 401
            assert (await _post(f"{base}/api/alerts/{key['c1']}/ack", {USER: "li"}))[0] == 403
            # c2 is not granted: refused on the board, its gateway never asked
            refused = await _post(f"{base}/api/alerts/{key['c2']}/ack", {USER: "li", **CSRF})
            assert refused[0] == 403
            assert refused[1]["reason"] == "not_granted"

            # c1: the button, journalled at the gateway by city:zhang, back on the board
            await asyncio.to_thread(lambda: browser.find(f"#ack-{key['c1']}").click())
            await eventually(lambda: alerts.current[key["c1"]].state
                             is AlertState.ACKNOWLEDGED, timeout=10,
                             what="the acknowledgement back on the board")
            await asyncio.to_thread(browser.wait, lambda: browser.js(
                f"return document.getElementById('alert-{key['c1']}').dataset.state")
                == "acknowledged", 5.0, "the card acknowledged")
            again = await _post(f"{base}/api/alerts/{key['c1']}/ack", {USER: "li", **CSRF})
            assert again[0] == 409

            # a hub that sends c2 an acknowledgement anyway: c2's gateway refuses, counts
            async with city_connection(nats_cluster) as nc:
                c2_alert = gateways[1].rules.active()[0]
                reply = await nc.request(ack_subject(city.district, "c2"), msgspec.json.encode(
                    CityAck(alert=c2_alert.id, user="li")), timeout=5)
            answer = msgspec.json.decode(reply.data, type=CityAckAnswer)
            acks = [r for g in gateways for r in await _acks(g)]
            states = [[a.state for a in g.rules.active()] for g in gateways]
            rejected = gateways[1].counters.get("ack_rejected", rule="elder.sos",
                                                reason="city_not_granted")
        board_acks = {r: hub.counters.get("board_acks", result=r)
                      for r in ("journalled", "not_granted", "no_user", "csrf", "not_firing")}
    finally:
        await asyncio.to_thread(browser.quit)
    assert [(a.rule, a.by) for a in acks] == [("elder.sos", "city:zhang")]
    assert states == [[AlertState.ACKNOWLEDGED], [AlertState.FIRING]]
    assert (answer.ok, answer.reason) == (False, "city_not_granted")
    assert rejected == 1
    assert board_acks == {"journalled": 1, "not_granted": 1, "no_user": 1, "csrf": 1,
                          "not_firing": 1}


async def _acks(gateway: Gateway) -> list[AckCommand]:
    batch = await gateway.journal.read_after(0, 10_000)
    return [e.record for e in batch.entries if isinstance(e.record, AckCommand)]
