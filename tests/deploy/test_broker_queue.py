"""What the shipped broker queues for a client that is away, as the operator chose it, and
what it does beyond that bound: it drops, and counts what it dropped."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.deploy.brokers import FileBroker
from tests.helpers import eventually

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"


def _render(*bounds: str) -> str:
    script = ('. "$1/mosquitto/broker.sh"; broker_render_conf "$1/mosquitto/scgw.conf.in" '
              '1883 127.0.0.1 8883 /etc/mosquitto/scgw "${@:2}"')
    return subprocess.run(["bash", "-c", script, "render", str(DEPLOY), *bounds],
                          check=True, capture_output=True, text=True).stdout


def _settings(conf: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in conf.splitlines()
            if line and not line.startswith("#") and len(line.split()) == 2}


def test_the_broker_queue_bounds_are_the_operators_with_persistence_on() -> None:
    chosen = _settings(_render("40", "1000000"))
    assert chosen["max_queued_messages"] == "40"
    assert chosen["max_queued_bytes"] == "1000000"
    assert chosen["persistence"] == "true"
    default = _settings(_render())
    assert default["max_queued_messages"] == "100000"
    assert default["max_queued_bytes"] == str(64 * 2**20)


def test_the_broker_writes_each_message_without_waiting_for_acknowledgements() -> None:
    # Nagle's algorithm off: an alert written behind an unacknowledged reading goes out at
    # once (test_broker.py runs Mosquitto on the installed file with it)
    assert _settings(_render())["set_tcp_nodelay"] == "true"


def _session(client_id: str) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties


async def test_beyond_its_bound_the_broker_drops_what_is_queued_for_a_client_away(
    tmp_path: Path
) -> None:
    broker = FileBroker(tmp_path)
    conf = _render("40", "0").replace("listener 1883 127.0.0.1", f"listener {broker.port}"
                                      " 127.0.0.1")
    # the shipped file's queue and persistence settings; its users, ACL and TLS aside
    kept = [line for line in conf.splitlines() if line.split()[:1] in (
        ["max_queued_messages"], ["max_queued_bytes"], ["persistence"],
        ["autosave_interval"], ["listener"])][:5]
    broker.main = ("\n".join(line for line in kept if "8883" not in line) +
                   f"\nallow_anonymous true\npersistence_location {tmp_path}/\n")
    broker.start()
    try:
        def away() -> aiomqtt.Client:
            return aiomqtt.Client("127.0.0.1", broker.port, identifier="gw-away",
                                  protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                  properties=_session("gw-away"))

        async with away() as client:
            await client.subscribe("q/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="pub") as pub:
            for n in range(100):
                await pub.publish("q/x", str(n).encode(), qos=1)
        got: list[int] = []
        async with away() as client:
            async def take() -> None:
                async for message in client.messages:
                    got.append(int(bytes(message.payload)))

            taker = asyncio.create_task(take())
            await eventually(lambda: len(got) >= 40, what="the queue delivered")
            await asyncio.sleep(0.3)  # anything beyond the bound would come now
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
    finally:
        broker.stop()
    # the oldest 40 are kept, the rest dropped, silently but for one line in its log
    assert got == list(range(40))
    assert "Outgoing messages are being dropped for client gw-away" in (
        tmp_path / "mosquitto.log").read_text()
