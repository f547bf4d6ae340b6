"""The duty officer's path through the console, in real headless Chromium, against a gateway
with real Mosquitto and VictoriaMetrics: log in, see an SOS arrive without a reload, hear it,
acknowledge it with a note, and log out; in Chinese, then in English."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from gateway.core.clock import ManualClock
from gateway.core.model import Alert, AlertState
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.console.browser import Browser
from tests.console.rig import OFFICER, PASSWORD, add_user, base_url, console_config
from tests.helpers import Watcher, eventually, running, unique_site
from tests.webhook import webhook

WORDS = {
    "zh-CN": {"login": "值班室登录", "what": "一键呼救", "where": "3号楼1单元5层",
              "armed": "声音已开启", "unarmed": "声音未开启", "next": "值班室",
              "notified": "家属", "state": "已确认", "note": "已到场，老人无恙",
              "online": "在线"},
    "en": {"login": "Duty office login", "what": "Elder SOS",
           "where": "building 3, unit 1, floor 5", "armed": "Sound armed",
           "unarmed": "Sound off", "next": "duty office", "notified": "family",
           "state": "acknowledged", "note": "on site, the elder is fine",
           "online": "online"},
}


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_officer_acknowledges_an_sos_on_the_board(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, language: str) -> None:
    words = WORDS[language]
    site = unique_site("con")
    async with webhook() as hook:
        contacts = tmp_path / "contacts.yaml"
        contacts.write_text(f"""
groups:
  duty_office: ["{hook.url('duty-office')}"]
  clinic: ["{hook.url('clinic')}"]
  property_manager: ["{hook.url('property-manager')}"]
  fire_warden: ["{hook.url('fire-warden')}"]
  maintenance: ["{hook.url('maintenance')}"]
devices:
  elder-1:
    family: ["{hook.url('family-of-elder-1')}"]
""")
        clock = ManualClock()
        config = console_config(tmp_path, site=site, broker_port=mosquitto.port,
                                store_url=victoria.url, contacts_file=str(contacts))
        add_user(config, OFFICER)
        base = base_url(config)
        alert_topic = f"sc/{site}/alerts/elder.sos/elder-1"
        browser = await asyncio.to_thread(Browser, language)
        try:
            async with running(Gateway(config, clock=clock)) as gateway, \
                    Watcher(mosquitto.port, alert_topic, "office") as office:
                await eventually(lambda: gateway.console.ready.is_set(), what="console")
                await eventually(lambda: gateway.connected, what="broker")

                await asyncio.to_thread(browser.get, base + "/")
                assert words["login"] in await asyncio.to_thread(browser.text)
                await asyncio.to_thread(browser.login, base, OFFICER, PASSWORD)
                assert words["unarmed"] in await asyncio.to_thread(browser.text, "#sound")
                await asyncio.to_thread(browser.find("#sound").click)
                await asyncio.to_thread(browser.wait, lambda: browser.state("armed"),
                                        what="sound armed")
                assert words["armed"] in await asyncio.to_thread(browser.text, "#sound")

                elder = SimulatedElder(gateway.pin_factory, 17, clock)
                elder.down()
                clock.advance(0.3)
                elder.up()
                pressed = time.monotonic()
                card = '#critical article.alert[data-rule="elder.sos"][data-state="firing"]'
                await asyncio.to_thread(browser.wait, lambda: browser.js(
                    f"return document.querySelector('{card}') !== null"), 3.0, "the SOS card")
                shown_after = time.monotonic() - pressed
                assert shown_after < 1.0, f"the SOS took {shown_after:.2f} s to show"
                assert await asyncio.to_thread(browser.state, "soundsPlayed") == 1
                assert await asyncio.to_thread(browser.state, "boards") > 1  # no reload

                alert = gateway.rules.active()[0]
                text = await asyncio.to_thread(browser.text, f"#alert-{alert.id}")
                assert words["what"] in text
                assert words["where"] in text
                assert words["next"] in text  # the next step, if nobody acknowledges
                await asyncio.to_thread(browser.wait, lambda: words["notified"] in browser.text(
                    f"#alert-{alert.id} .notified"), what="family notified")

                await asyncio.to_thread(
                    browser.find(f"#ack-note-{alert.id}").send_keys, words["note"])
                await asyncio.to_thread(browser.find(f"#ack-{alert.id}").click)
                acked = await office.next(lambda s: msgspec.json.decode(
                    s.payload, type=Alert).state is AlertState.ACKNOWLEDGED)
                assert msgspec.json.decode(acked.payload, type=Alert).by == OFFICER
                async with Watcher(mosquitto.port, alert_topic, "later") as later:
                    kept = await later.next(lambda s: s.retain)  # what the broker keeps
                assert msgspec.json.decode(kept.payload, type=Alert).state \
                    is AlertState.ACKNOWLEDGED
                assert msgspec.json.decode(kept.payload, type=Alert).by == OFFICER
                await asyncio.to_thread(browser.wait, lambda: words["note"] in browser.text(
                    f"#alert-{alert.id} .timeline"), what="the note in the timeline")
                assert words["state"] in await asyncio.to_thread(
                    browser.text, f"#alert-{alert.id} .state")

                clock.advance(600)  # past every step of the policy: none goes out now
                await eventually(lambda: gateway.runner.idle, what="rules idle")
                await eventually(lambda: gateway.notify_sink.cursor >= gateway.journal.last_seq,
                                 what="notify sink idle")
                assert hook.paths() == ["family-of-elder-1"]
                assert gateway.alert_log is not None
                entries = gateway.alert_log.records[alert.id].entries
                assert [e.what for e in entries] == ["firing", "notified", "acknowledged",
                                                     "ack_note"]
                assert (entries[2].by, entries[3].by, entries[3].note) == (
                    OFFICER, OFFICER, words["note"])

                # the shift handover and the devices, from the same session
                await asyncio.to_thread(browser.find("#nav-shift").click)
                await asyncio.to_thread(browser.wait, lambda: words["note"] in browser.text(
                    "main"), what="the shift handover")
                shift = await asyncio.to_thread(browser.text, "main")
                assert words["what"] in shift
                assert OFFICER in shift
                await asyncio.to_thread(browser.find("#nav-devices").click)
                await asyncio.to_thread(browser.wait, lambda: "elder-1" in browser.text(
                    "main"), what="the devices")
                assert words["online"] in await asyncio.to_thread(browser.text, "main")

                # a link from Grafana's active alarms points at the alert
                await asyncio.to_thread(browser.get,
                                        f"{base}/?rule=elder.sos&device=elder-1")
                await asyncio.to_thread(browser.wait, lambda: browser.js(
                    f"return document.getElementById('alert-{alert.id}')"
                    ".classList.contains('focus');"), what="the linked alert in focus")

                await asyncio.to_thread(browser.find("#logout").click)
                await asyncio.to_thread(browser.wait, lambda: browser.driver.current_url
                                        == base + "/login", what="the login page")
                await asyncio.to_thread(browser.get, base + "/")
                assert await asyncio.to_thread(lambda: browser.find("#login-form") is not None)
        finally:
            await asyncio.to_thread(browser.quit)
