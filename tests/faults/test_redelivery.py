"""The broker delivers again what the gateway journalled but whose acknowledgement it did not
keep: each such message stays one record (one id, one timestamp).

The acknowledgements are lost on purpose (the connection's `ack` does nothing for a while): the
moment a real crash would lose them cannot be hit on demand.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.link.connection import BrokerConnection
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.faults.oracle import Observer
from tests.faults.presses import judge_presses, numbered_sos, press_payload
from tests.helpers import eventually, make_config, running, sos_mqtt, unique_site

BUTTONS = 5
PRESSES = 10  # per button


@pytest.fixture
def acks_lost(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """While the list holds True, the gateway's acknowledgements never reach the broker."""
    lose = [1]
    real_ack = BrokerConnection.ack

    def ack(self: BrokerConnection, mid: int, qos: int) -> None:
        if not lose:
            real_ack(self, mid, qos)

    monkeypatch.setattr(BrokerConnection, "ack", ack)
    return lose


def _config(tmp_path: Path, site: str, broker: int, store: str) -> Any:
    devices = [numbered_sos(f"sos-{n}", f"vendor/{site}/sos-{n}") for n in range(BUTTONS)]
    return make_config(tmp_path, site=site, store_url=store, devices=devices,
                       broker={"host": "127.0.0.1", "port": broker, "reconnect_min_s": 0.1,
                               "reconnect_max_s": 0.5, "publish_timeout_s": 5})


async def _press(port: int, site: str) -> dict[str, list[int]]:
    sent: dict[str, list[int]] = {f"sos-{b}": [] for b in range(BUTTONS)}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"src-{site}") as source:
        for n in range(PRESSES):
            for b in range(BUTTONS):
                seq = n * BUTTONS + b
                await source.publish(f"vendor/{site}/sos-{b}", press_payload(seq), qos=1)
                sent[f"sos-{b}"].append(seq)
    return sent


async def _redelivered(gateway: Gateway, messages: int) -> None:
    """Wait until `messages` were handled: journalled, or recognised as delivered again."""
    await eventually(lambda: gateway.counters.get("events_accepted")
                     + gateway.counters.get("redelivered") >= messages,
                     what="the broker's redeliveries handled")


async def _saved_after(broker: Mosquitto, since: float) -> None:
    """Wait for the broker's next autosave (every second) after `since`."""
    saved = broker.workdir / "mosquitto.db"
    await eventually(lambda: saved.exists() and saved.stat().st_mtime > since,
                     what="the broker's autosave")


async def _verdict(observer: Observer, sent: dict[str, list[int]], store_url: str,
                   site: str) -> Any:
    async def delivered() -> bool:
        verdict = await judge_presses(sent, observer.events, store_url, site)
        return verdict.lost_mqtt == 0 and verdict.lost_store == 0

    await eventually(delivered, timeout=20, what="every press on MQTT and in the store")
    return await judge_presses(sent, observer.events, store_url, site)


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_broker_restart_redelivers_the_same_record(
    tmp_path: Path, persistent_mosquitto: Mosquitto, victoria: VictoriaMetrics,
    acks_lost: list[int], stop: str
) -> None:
    broker = persistent_mosquitto
    site = unique_site("fault-redeliver")
    config = _config(tmp_path, site, broker.port, victoria.url)
    total = BUTTONS * PRESSES
    async with Observer(broker.port, site) as observer, running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        sent = await _press(broker.port, site)
        await eventually(lambda: gateway.counters.get("events_accepted") == total,
                         what="every press journalled")
        if stop == "SIGKILL":
            await _saved_after(broker, time.time())
            broker.kill()  # its last autosave holds the unacknowledged messages
        else:
            broker.stop()
        acks_lost.clear()
        broker.start()
        await _redelivered(gateway, 2 * total)
        verdict = await _verdict(observer, sent, victoria.url, site)
        assert gateway.counters.get("events_accepted") == total
        assert gateway.counters.get("redelivered") == total
    verdict.extra["redelivered"] = total
    verdict.print(f"broker {stop} with unacknowledged messages")
    assert verdict.clean, verdict


async def test_gateway_restart_recognises_what_it_journalled(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, acks_lost: list[int]
) -> None:
    site = unique_site("fault-redeliver")
    config = _config(tmp_path, site, mosquitto.port, victoria.url)
    total = BUTTONS * PRESSES
    async with Observer(mosquitto.port, site) as observer:
        async with running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            sent = await _press(mosquitto.port, site)
            await eventually(lambda: gateway.counters.get("events_accepted") == total,
                             what="every press journalled")
        acks_lost.clear()  # the broker still holds all of them as unacknowledged
        async with running(Gateway(config)) as gateway:
            await _redelivered(gateway, total)
            verdict = await _verdict(observer, sent, victoria.url, site)
            assert gateway.counters.get("events_accepted") == 0
            assert gateway.counters.get("redelivered") == total
    verdict.extra["redelivered"] = total
    verdict.print("gateway restart with unacknowledged messages")
    assert verdict.clean, verdict


async def test_the_same_press_again_is_a_new_press(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    """A button without a sequence number sends the very same payload for every press:
    each is a message of its own (a packet id of its own), never taken for a redelivery,
    even when a broker that lost the session numbers its packets from 1 again."""
    site = unique_site("fault-redeliver")
    topic = f"vendor/{site}/sos-1"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         store_url=victoria.url, devices=[sos_mqtt("sos-1", topic)])
    press = b'{"action": "single"}'
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as source:
            for _ in range(3):
                await source.publish(topic, press, qos=1)
        await eventually(lambda: gateway.counters.get("events_accepted") == 3,
                         what="three presses journalled")
        mosquitto.restart()  # no persistence: the gateway's session is gone
        await eventually(lambda: gateway.counters.get("mqtt_disconnects") >= 1
                         and gateway.link.connected, what="connected again")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as source:
            await source.publish(topic, press, qos=1)  # packet id 1 again, same content
        await eventually(lambda: gateway.counters.get("events_accepted") == 4,
                         what="the fourth press journalled")
        assert gateway.counters.get("redelivered") == 0
