"""A device sending huge payloads: the broker refuses what is beyond its limit, the gateway
refuses what is beyond its own, and another device's SOS goes through untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.config import BROKER_MESSAGE_LIMIT, DEFAULT_MAX_PAYLOAD
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.faults.oracle import Observer, accepted_alarms
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site


def press(size: int) -> bytes:
    """A well-formed press padded to `size` bytes: only its size is wrong."""
    head = b'{"action": "single", "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.fixture
def unlimited_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker as Mosquitto comes by default: any payload size."""
    broker = Mosquitto(tmp_path / "mosquitto-unlimited", message_size_limit=None)
    broker.start()
    yield broker
    broker.stop()


async def _one_sos_among_huge_payloads(tmp_path: Path, broker: Mosquitto,
                                       sizes: list[int]) -> Gateway:
    site = unique_site("huge")
    loud, quiet = f"vendor/{site}/sos-loud", f"vendor/{site}/sos-quiet"
    config = make_config(tmp_path, site=site, broker_port=broker.port,
                         devices=[sos_mqtt("sos-loud", loud), sos_mqtt("sos-quiet", quiet)],
                         shutdown_timeout_s=0.5)
    async with Observer(broker.port, site) as observer:
        async with running(Gateway(config)) as gateway, Watcher(
                broker.port, "nothing/#", "devices") as devices:
            await eventually(lambda: gateway.connected, what="connected")
            for size in sizes:
                await devices.publish(loud, press(size))
            await devices.publish(quiet, b'{"action": "single"}')
            await eventually(lambda: len(observer.events) == 1, what="the quiet SOS")
            await eventually(lambda: gateway.runner.idle, what="rules idle")
            assert [a.device for a in gateway.rules.active()] == ["sos-quiet"]
        accepted = await accepted_alarms(config.journal.path)
    assert [e.device for e in accepted] == ["sos-quiet"]
    assert [e.id for e in observer.events] == [e.id for e in accepted]
    return gateway


async def test_oversized_payloads_are_refused_by_broker_and_gateway(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    too_large_for_the_gateway = DEFAULT_MAX_PAYLOAD + 1
    too_large_for_the_broker = BROKER_MESSAGE_LIMIT + 1
    gateway = await _one_sos_among_huge_payloads(
        tmp_path, mosquitto, [too_large_for_the_broker, too_large_for_the_gateway])
    # the one the broker let through is refused by the gateway, named and counted
    assert gateway.counters.get("rejected", device="sos-loud",
                                reason="payload_too_large") == 1
    assert gateway.counters.get("handler_errors") == 0


async def test_a_broker_without_a_limit_sends_the_gateway_nothing_huge(
        tmp_path: Path, unlimited_mosquitto: Mosquitto) -> None:
    gateway = await _one_sos_among_huge_payloads(tmp_path, unlimited_mosquitto, [8 * 2**20])
    # the broker honoured the gateway's maximum packet size: it never arrived
    assert gateway.counters.get("rejected", device="sos-loud") == 0
