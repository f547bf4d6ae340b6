"""The `jetstream` transport against a real NATS server with JetStream and passwords: a
delivery is the stream's acknowledgement, a record sent again is stored once, and a wrong
password, an unset secret or the wrong stream is a failed delivery."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nats
import pytest

from gateway.core.city import NatsAccess
from gateway.core.clock import SystemClock
from gateway.core.upstream_config import JetStreamUpstream
from gateway.ops.private_servers import NatsCluster
from gateway.upstreams.registry import transport_for
from gateway.upstreams.transport import Parcel, Setting, TransportDown

PASSWORD = "compound-password"
PARCELS = [Parcel(f"r{n}", n, f"e{n % 2}", "elder_button", "press",
                  f'{{"id":"r{n}","ts":{n}}}'.encode(), "alarms") for n in range(6)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    alone = NatsCluster(tmp_path_factory.mktemp("nats-alone"), size=1,
                        users={"compound": PASSWORD, "city": "city-password"})
    alone.start()
    yield alone
    alone.stop()


def upstream(server: NatsCluster, stream: str = "CITY") -> JetStreamUpstream:
    return JetStreamUpstream(kind="jetstream", name="city", policy=Path("p.yaml"),
                             district="north", stream=stream, timeout_s=2.0,
                             nats=NatsAccess(servers=server.urls, user="compound",
                                             password_env="PW"))


async def test_a_parcel_is_delivered_once_the_stream_holds_it_and_stored_once(
        server: NatsCluster) -> None:
    admin = await nats.connect(servers=server.urls, user="city", password="city-password")
    js = admin.jetstream()
    await js.add_stream(name="CITY", subjects=["sc.>"], duplicate_window=60)
    transport = transport_for(upstream(server), Setting("c1", {"PW": PASSWORD},
                                                        SystemClock()))
    await transport.open()
    try:
        await transport.deliver(PARCELS)
        await transport.deliver(PARCELS[2:])  # a retry after a lost acknowledgement
    finally:
        await transport.close()
    info = await js.stream_info("CITY")
    first = await js.get_msg("CITY", 1)
    # what the stream acknowledged is not sent again by a retry of a batch that failed later
    await js.purge_stream("CITY")
    await transport.open()
    try:
        await transport.deliver([*PARCELS, replace(PARCELS[-1], record_id="r9")])
    finally:
        await transport.close()
    again = await js.stream_info("CITY")
    await admin.close()
    assert info.state.messages == len(PARCELS)
    assert again.state.messages == 1
    assert first.subject == "sc.north.c1.elder_button.e0.press"
    assert (first.headers or {}).get("Nats-Msg-Id") == "north.c1.r0.press"


@pytest.mark.parametrize(("env", "reason"), [({"PW": "wrong"}, "unreachable"),
                                             ({}, "access")])
async def test_a_wrong_or_missing_password_is_a_failed_delivery(
        server: NatsCluster, env: dict[str, str], reason: str) -> None:
    transport = transport_for(upstream(server), Setting("c1", env, SystemClock()))
    with pytest.raises(TransportDown) as failed:
        await transport.open()
    await transport.close()
    assert failed.value.reason == reason


async def test_a_subject_the_expected_stream_does_not_take_is_not_delivered(
        server: NatsCluster) -> None:
    transport = transport_for(upstream(server, stream="ELSEWHERE"),
                              Setting("c1", {"PW": PASSWORD}, SystemClock()))
    await transport.open()
    try:
        with pytest.raises(TransportDown) as failed:
            await transport.deliver(PARCELS[:1])
    finally:
        await transport.close()
    assert failed.value.reason == "not_confirmed"
