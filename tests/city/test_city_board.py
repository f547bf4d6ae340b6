"""The city board in real headless Chromium: the duty console's page in multi-compound mode,
served by a hub against the real cluster. Every alert with its compound, pushed without a
reload, the latest events, a compound filter, and nothing to act with."""

from __future__ import annotations

import asyncio
import os
import time

from selenium.webdriver.support.select import Select

from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Severity,
    encode,
    new_id,
)
from gateway.ops.private_servers import NatsCluster, VictoriaMetrics
from tests.city.rig import CityNames, city_client, hub_config, publish, running_hub
from tests.console.browser import Browser

T0 = int(time.time() * 1000) // 1000 * 1000


def _alert(alert_id: str, rule: str, device: str, severity: Severity,
           state: AlertState = AlertState.FIRING, ts: int = T0) -> Alert:
    return Alert(id=alert_id, ts=ts, rule=rule, device=device, kind=DeviceKind.ELDER_BUTTON,
                 state=state, severity=severity, since=T0)


def _press(device: str, n: int) -> DeviceEvent:
    return DeviceEvent(id=new_id(T0 + n), ts=T0 + n, kind=DeviceKind.ELDER_BUTTON,
                       device=device, type="press", cls=DeliveryClass.ALARM)


def _cards(browser: Browser) -> dict[str, tuple[str, bool]]:
    """Each card's alert id: its compound line and whether it shows."""
    rows = browser.js("return [...document.querySelectorAll('article.alert')].map((a) => "
                      "[a.id, a.querySelector('.compound').textContent, !a.hidden]);")
    return {row[0]: (row[1], row[2]) for row in rows}


def _events(browser: Browser) -> list[tuple[str, str, bool]]:
    rows = browser.js("return [...document.querySelectorAll('tr.event')].map((r) => "
                      "[r.dataset.compound, r.dataset.id, !r.hidden]);")
    return [tuple(row) for row in rows]


async def test_the_city_board_is_the_console_in_multi_compound_mode(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url, board={"language": "en"})
    base = f"http://127.0.0.1:{config.board.port}"
    c1, c2 = f"{city.district}/c1", f"{city.district}/c2"
    browser = await asyncio.to_thread(Browser, "en")
    try:
        async with running_hub(config) as hub, city_client(nats_cluster) as js:
            assert hub.alerts is not None
            sos = _alert("al-1", "elder.sos", "e1", Severity.CRITICAL)
            await publish(js, city.district, "c1", sos)
            # as a compound's policy shapes it: the floor it came from, beside the fields
            subject = f"sc.{city.district}.c2.elder_button.e2.firing"
            await js.publish(subject, encode(_alert("al-2", "device.low_battery", "e2",
                                                    Severity.MINOR))[:-1]
                             + b',"building":"3","floor":5}',
                             headers={"Nats-Msg-Id": "c2.al-2.firing"})
            presses = [("c1", _press("e1", 1)), ("c2", _press("e2", 2))]
            for site, event in presses:
                await publish(js, city.district, site, event)

            await asyncio.to_thread(browser.get, base + "/")
            await asyncio.to_thread(browser.wait, lambda: len(_cards(browser)) == 2
                                    and len(_events(browser)) == 2, 10.0,
                                    "both alerts and both events")
            keys = {a.id: a.key for a in hub.alerts.active()}
            assert await asyncio.to_thread(_cards, browser) == {
                f"alert-{keys['al-1']}": (c1, True), f"alert-{keys['al-2']}": (c2, True)}
            sos_card = await asyncio.to_thread(browser.text, f"#alert-{keys['al-1']}")
            assert "Elder SOS" in sos_card  # the console's own words for the rule
            assert "null" not in sos_card
            assert "building 3, floor 5" in await asyncio.to_thread(
                browser.text, f"#alert-{keys['al-2']}")
            assert await asyncio.to_thread(browser.js, "return document.querySelector("
                                           "'#critical').hidden") is False
            assert sorted(await asyncio.to_thread(_events, browser)) == sorted(
                (f"{city.district}/{site}", e.id, True) for site, e in presses)
            # a compound's escalation is its duty office's: not shown as if there were none
            assert await asyncio.to_thread(browser.js, "return document.querySelectorAll("
                                           "'dl.escalation').length") == 0
            # read-only: nothing to act with, nobody to log in as
            assert await asyncio.to_thread(browser.js, "return document.querySelectorAll("
                                           "'button.ack-button, textarea, #logout, .actions')"
                                           ".length") == 0
            assert "read-only" in await asyncio.to_thread(browser.text, "header")

            if os.environ.get("SCGW_CITY_SCREENSHOT"):  # a picture for the docs
                await asyncio.to_thread(browser.driver.save_screenshot,
                                        os.environ["SCGW_CITY_SCREENSHOT"])

            # pushed: a new alert and its end show without a reload
            boards = await asyncio.to_thread(browser.state, "boards")
            await publish(js, city.district, "c2", _alert("al-3", "elder.sos", "e3",
                                                          Severity.CRITICAL))
            await asyncio.to_thread(browser.wait, lambda: len(_cards(browser)) == 3, 5.0,
                                    "the third alert")
            await publish(js, city.district, "c2", _alert(
                "al-3", "elder.sos", "e3", Severity.CRITICAL, AlertState.RESOLVED, T0 + 5))
            await asyncio.to_thread(browser.wait, lambda: len(_cards(browser)) == 2, 5.0,
                                    "the resolved alert gone")
            assert await asyncio.to_thread(browser.state, "boards") > boards

            # one compound: the other's alerts and events hide; the choice is in the address
            await asyncio.to_thread(lambda: Select(browser.find("#compound-filter"))
                                    .select_by_value(c2))
            await asyncio.to_thread(browser.wait, lambda: not _cards(browser)[
                f"alert-{keys['al-1']}"][1], 3.0, "c1's alert hidden")
            assert await asyncio.to_thread(_cards, browser) == {
                f"alert-{keys['al-1']}": (c1, False), f"alert-{keys['al-2']}": (c2, True)}
            assert {(c, shown) for c, _, shown in await asyncio.to_thread(
                _events, browser)} == {(c1, False), (c2, True)}
            assert await asyncio.to_thread(browser.js, "return document.querySelector("
                                           "'#critical').hidden") is True
            assert await asyncio.to_thread(lambda: browser.driver.current_url) == (
                f"{base}/?compound={c2.replace('/', '%2F')}")

            # in Chinese, from the link: the compound chosen stays
            await asyncio.to_thread(lambda: browser.find("#language").click())
            await asyncio.to_thread(browser.wait, lambda: "城市报警看板" in browser.text(
                "header") and len(_cards(browser)) == 2, 5.0, "the board in Chinese")
            assert await asyncio.to_thread(browser.js, "return document.getElementById("
                                           "'compound-filter').value") == c2
            assert await asyncio.to_thread(_cards, browser) == {
                f"alert-{keys['al-1']}": (c1, False), f"alert-{keys['al-2']}": (c2, True)}
            assert "设备电量低" in await asyncio.to_thread(browser.text,
                                                      f"#alert-{keys['al-2']}")
    finally:
        await asyncio.to_thread(browser.quit)
