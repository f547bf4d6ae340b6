"""A board left open recovers by itself while the broker restarts and while the gateway
restarts, and says so on the page while it is cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.console.browser import Browser
from tests.console.rig import OFFICER, PASSWORD, add_user, base_url, console_config
from tests.helpers import eventually, running, unique_site


def _shown(browser: Browser, banner: str) -> bool:
    return bool(browser.js(f"return !document.getElementById('{banner}').hidden;"))


async def test_the_board_recovers_from_broker_and_gateway_restarts(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    # the system clock: the gateway's reconnection backoff must run on its own
    config = console_config(tmp_path, site=unique_site("rec"), broker_port=mosquitto.port,
                            store_url="http://127.0.0.1:9")
    add_user(config, OFFICER)
    base = base_url(config)
    browser = await asyncio.to_thread(Browser, "en")
    try:
        async with running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.console.ready.is_set(), what="console")
            await eventually(lambda: gateway.connected, what="broker")
            await asyncio.to_thread(browser.login, base, OFFICER, PASSWORD)
            await asyncio.to_thread(browser.js, "window.sameDocument = true;")
            assert not await asyncio.to_thread(_shown, browser, "broker")

            await asyncio.to_thread(mosquitto.stop)
            await asyncio.to_thread(browser.wait, lambda: _shown(browser, "broker"), 5.0,
                                    "the broker banner")
            assert "MQTT" in await asyncio.to_thread(browser.text, "#broker")
            await asyncio.to_thread(mosquitto.start)
            await asyncio.to_thread(browser.wait, lambda: not _shown(browser, "broker"), 10.0,
                                    "the broker banner gone")

        # the gateway is down: the page says so at once
        await asyncio.to_thread(browser.wait, lambda: _shown(browser, "stream"), 3.0,
                                "the broken stream banner")
        assert "reconnecting" in await asyncio.to_thread(browser.text, "#stream")
        assert await asyncio.to_thread(browser.state, "stream") == "broken"

        async with running(Gateway(config)) as gateway:
            await asyncio.to_thread(browser.wait, lambda: not _shown(browser, "stream")
                                    and browser.state("stream") == "open", 10.0,
                                    "the stream back")
            await SimulatedElder(gateway.pin_factory, 17, gateway.clock).press()
            await asyncio.to_thread(browser.wait, lambda: browser.js(
                "return document.querySelector('#critical article.alert') !== null"), 3.0,
                "the SOS after the restart")
            # the same page all along: no reload, no new login (the session outlived it)
            assert await asyncio.to_thread(browser.js, "return window.sameDocument === true;")

            # the duty office went to see: a press by mistake, resolved by hand on the page
            [alert] = gateway.rules.active()
            await asyncio.to_thread(browser.find(f"#resolve-reason-{alert.id}").send_keys,
                                    "pressed by mistake")
            await asyncio.to_thread(browser.find(f"#resolve-{alert.id}").click)
            await asyncio.to_thread(browser.wait, lambda: browser.js(
                "return document.querySelector('article.alert') === null"), 5.0,
                "the alert gone from the board")
            assert gateway.rules.active() == []
            assert gateway.alert_log is not None
            assert gateway.alert_log.records[alert.id].alert.by == OFFICER
    finally:
        await asyncio.to_thread(browser.quit)
