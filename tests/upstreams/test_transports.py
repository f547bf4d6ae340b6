"""The transports against real far sides: a broker with TLS and credentials, a webhook that
checks signatures. A wrong certificate, password or secret is a failed delivery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from gateway.core.clock import SystemClock
from gateway.core.upstream_config import AnyUpstream, MqttUpstream, WebhookUpstream
from gateway.ops.private_servers import Mosquitto
from gateway.upstreams.registry import TRANSPORTS, transport_for
from gateway.upstreams.transport import Parcel, Setting, TransportDown
from tests.helpers import eventually
from tests.pki import localhost_pki
from tests.upstreams.receivers import Subscriber, signed_webhook

PASSWORD = "platform-broker-password"
PARCELS = [Parcel("r1", 1, "building-3", "smoke", "firing", b'{"id":"r1"}', "fire"),
           Parcel("r2", 2, "dev/+#", "any", "event", b'{"id":"r2"}', "fire")]


@pytest.fixture
def tls_broker(tmp_path: Path, platform_pki: dict[str, Path]) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker",
                       tls=(platform_pki["ca"], platform_pki["cert"], platform_pki["key"]),
                       passwords={"compound": PASSWORD})
    broker.start()
    yield broker
    broker.stop()


def mqtt(port: int, ca: Path, password: str = PASSWORD) -> MqttUpstream:
    return MqttUpstream(kind="mqtt", name="city", policy=Path("p.yaml"), host="localhost",
                        port=port, ca_file=ca, username="compound", password_env="PW",
                        topic="city/{site}/{kind}/{device}/{type}", timeout_s=5)


def test_every_kind_has_a_transport() -> None:
    kinds = {get_args(cls.model_fields["kind"].annotation)[0]
             for cls in get_args(AnyUpstream)}
    assert {"mqtt", "webhook"} <= kinds
    assert set(TRANSPORTS) == kinds


async def test_mqtt_publishes_each_parcel_on_its_topic_once_the_broker_confirmed(
        tls_broker: Mosquitto, platform_pki: dict[str, Path]) -> None:
    transport = transport_for(mqtt(tls_broker.port, platform_pki["ca"]),
                              Setting("c1", {"PW": PASSWORD}, SystemClock()))
    async with Subscriber(tls_broker.port, ca=platform_pki["ca"], username="compound",
                          password=PASSWORD) as platform:
        await transport.open()
        try:
            await transport.deliver(PARCELS)
        finally:
            await transport.close()
        await eventually(lambda: len(platform.received) == 2, what="both received")
    # a value is one topic level: '/' and wildcards in it cannot change the topic
    assert [(m.topic, m.payload["id"]) for m in platform.received] == [
        ("city/c1/smoke/building-3/firing", "r1"), ("city/c1/any/dev___/event", "r2")]


@pytest.mark.parametrize("mistake", ["another CA", "wrong password"])
async def test_mqtt_refuses_a_broker_it_cannot_verify_or_that_refuses_it(
        tls_broker: Mosquitto, platform_pki: dict[str, Path], tmp_path: Path,
        mistake: str) -> None:
    ca = localhost_pki(tmp_path / "other", "someone else's CA")["ca"] \
        if mistake == "another CA" else platform_pki["ca"]
    password = "not-the-password" if mistake == "wrong password" else PASSWORD
    transport = transport_for(mqtt(tls_broker.port, ca),
                              Setting("c1", {"PW": password}, SystemClock()))

    async def attempt() -> None:
        await transport.open()
        await transport.deliver(PARCELS)

    with pytest.raises(TransportDown) as caught:
        await attempt()
    await transport.close()
    assert caught.value.reason in ("unreachable", "not_confirmed")


async def test_a_webhook_with_another_secret_is_refused(platform_pki: dict[str, Path]) -> None:
    async with signed_webhook(b"the-platforms-own-secret", platform_pki["cert"],
                              platform_pki["key"]) as hook:
        config = WebhookUpstream(kind="webhook", name="d", policy=Path("p.yaml"), url=hook.url,
                                 secret_env="S", ca_file=platform_pki["ca"])
        transport = transport_for(config, Setting("c1", {"S": "a-guessed-secret-value"},
                                                  SystemClock()))
        await transport.open()
        with pytest.raises(TransportDown) as caught:
            await transport.deliver(PARCELS)
        await transport.close()
    assert caught.value.reason == "http_401"
    assert hook.refused == ["signature"]
    assert hook.records == []
