"""The journal refuses commits for a while (write errors): no alarm and no alert is lost.

A disk that returns I/O errors cannot be made on demand: the journal thread's commit is
made to fail for the first commits of a kind, everything else real (Mosquitto, the store,
the gateway, a GPIO button on gpiozero's mock pins). Every button pressed during the
errors must still raise its SOS alert on MQTT, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gateway.core.model import Alert, AlertState, DeviceEvent
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.faults.oracle import Observer
from tests.faults.presses import judge_presses, numbered_sos, press_payload
from tests.helpers import (
    Watcher,
    elder_gpio,
    eventually,
    make_config,
    refuse_commits,
    running,
    unique_site,
)

BUTTONS = 20
REFUSED = 3  # alert commits refused before the journal writes again


async def test_alerts_whose_commits_failed_are_raised_once_the_journal_writes_again(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = refuse_commits(monkeypatch, REFUSED,
                             lambda records: any(isinstance(r, Alert) for r in records))
    site = unique_site("fault-write")
    devices = [numbered_sos(f"sos-{n}", f"vendor/{site}/sos-{n}") for n in range(BUTTONS)]
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         store_url=victoria.url, devices=devices)
    sent = {f"sos-{n}": [n] for n in range(BUTTONS)}
    sent_at: dict[str, float] = {}
    # one observer outside the gateway for the presses' events and the alerts
    async with Observer(mosquitto.port, site, f"sc/{site}/#") as observer, \
            running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  identifier=f"src-{site}") as source:
            for n in range(BUTTONS):
                sent_at[f"sos-{n}"] = time.monotonic()
                await source.publish(f"vendor/{site}/sos-{n}", press_payload(n), qos=1)

        def firing() -> dict[str, list[tuple[str, float]]]:
            """Per button, the firing SOS alerts seen: (id, arrival)."""
            seen: dict[str, list[tuple[str, float]]] = {}
            for (topic, payload), at in zip(observer.messages, observer.arrived, strict=True):
                if "/alerts/" not in topic:
                    continue
                alert = msgspec.json.decode(payload, type=Alert)
                if alert.rule == "elder.sos" and alert.state is AlertState.FIRING:
                    seen.setdefault(alert.device, []).append((alert.id, at))
            return seen

        await eventually(lambda: len(firing()) == BUTTONS, timeout=30,
                         what="every button's SOS alert")
        assert len(refused) == REFUSED
        assert gateway.counters.get("task_restarts", task="gw.rules") == REFUSED
        alerts = firing()
        # one alert a button: no second alert with a new id (the same id twice would be
        # a delivery again, counted apart below)
        assert {len({alert_id for alert_id, _ in seen}) for seen in alerts.values()} == {1}
        events = [msgspec.json.decode(payload, type=DeviceEvent)
                  for topic, payload in observer.messages if topic.endswith("/event")]

        async def stored() -> bool:
            verdict = await judge_presses(sent, events, victoria.url, site)
            return verdict.lost_store == 0

        await eventually(stored, timeout=20, what="every press in the store")
        verdict = await judge_presses(sent, events, victoria.url, site)
    # press published -> its alert seen outside the gateway, the refusals and the rules'
    # restarts included
    delays = sorted(min(at for _, at in seen) - sent_at[device]
                    for device, seen in alerts.items())
    verdict.extra["alert_delay_p50_ms"] = round(delays[len(delays) // 2] * 1000)
    verdict.extra["alert_delay_max_ms"] = round(delays[-1] * 1000)
    verdict.extra["alerts_delivered_again"] = sum(len(seen) - 1 for seen in alerts.values())
    verdict.print("journal refuses the rules' commits")
    assert verdict.clean, verdict


async def test_a_wired_button_pressed_while_the_journal_refuses_still_raises_its_alarm(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The button is its press's only source: the press the journal refused twice is
    handed over again by the driver, journalled and alerted; the next press follows it."""
    refused = refuse_commits(monkeypatch, 2, lambda records: any(
        isinstance(r, DeviceEvent) and r.device == "elder-9" for r in records))
    site = unique_site("fault-gpio")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[elder_gpio("elder-9", pin=22)], shutdown_timeout_s=0.5)
    alert_topic = f"sc/{site}/alerts/elder.sos/elder-9"
    async with running(Gateway(config)) as gateway, \
            Watcher(mosquitto.port, alert_topic, "duty") as duty:
        await eventually(lambda: gateway.connected, what="connected")
        elder = SimulatedElder(gateway.pin_factory, 22, gateway.clock)
        elder.down()
        released = time.monotonic()
        elder.up()
        firing = msgspec.json.decode((await duty.next(lambda m: True)).payload, type=Alert)
        # release -> alert seen outside the gateway: the debounce, two refusals and the
        # driver's two waits before it handed the press over again
        print(f"[journal refuses a wired press twice] alert after "
              f"{(time.monotonic() - released) * 1000:.0f} ms")
        assert firing.state is AlertState.FIRING
        assert [[r.type for r in rs if isinstance(r, DeviceEvent)] for rs in refused] == [
            ["press"], ["press"]]
        assert gateway.counters.get("journal_retries", device="elder-9") == 2
        events = [e.record for e in (await gateway.journal.read_after(0, 50)).entries
                  if isinstance(e.record, DeviceEvent) and e.record.device == "elder-9"]
        assert [e.type for e in events] == ["press"]  # journalled once
