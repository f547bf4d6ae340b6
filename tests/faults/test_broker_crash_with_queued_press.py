"""A press the installed broker acknowledged while the gateway was away, and the broker
SIGKILLed 11 s later: with the installed autosave interval the press was on its disk.

Mosquitto saves at start + k * (interval + 1 s); the press comes a few seconds after the
start, so with a 60 s interval no save falls within the 11 s and the press is lost."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import aiomqtt

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.faults.oracle import Observer, accepted_alarms, mqtt_copies
from tests.helpers import eventually, make_config, running, sos_mqtt, unique_site

TEMPLATE = Path(__file__).parents[2] / "deploy" / "mosquitto" / "scgw.conf.in"
# what docs/reliability.md promises: a crash loses at most what arrived in the last 11 s
SAVED_WITHIN_S = 11.0


def _installed_autosave_s() -> int:
    found = re.search(r"^autosave_interval (\d+)$", TEMPLATE.read_text(), re.MULTILINE)
    assert found is not None, f"no autosave_interval in {TEMPLATE}"
    return int(found.group(1))


def _saved(db: Path) -> tuple[int, int]:
    try:
        stat = db.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_ino, stat.st_mtime_ns)


async def test_a_press_queued_for_the_gateway_survives_a_broker_crash(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    mosquitto = Mosquitto(tmp_path / "mosquitto", persistence=True,
                          autosave_s=_installed_autosave_s())
    mosquitto.start()
    try:
        site = unique_site("fault-queued")
        topic = f"dev/{site}/sos-1"
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                             store_url=victoria.url, devices=[sos_mqtt("sos-1", topic)],
                             shutdown_timeout_s=0.5)
        async with Observer(mosquitto.port, site, persistent=False) as observer:
            async with running(Gateway(config)) as gateway:
                await eventually(lambda: gateway.connected, what="connected")
            # the gateway is away (restarting, say); its session keeps the press for it
            db = mosquitto.workdir / "mosquitto.db"
            before = _saved(db)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                      identifier=f"device-{site}") as device:
                await device.publish(topic, b'{"action": "single"}', qos=1)  # acknowledged
            # the crash comes at the broker's first save after the press, or 11 s after it
            with contextlib.suppress(AssertionError):
                await eventually(lambda: _saved(db) != before, timeout=SAVED_WITHIN_S)
            mosquitto.kill()
            mosquitto.start()
            await eventually(lambda: observer.connections == 2, what="the observer back")
            async with running(Gateway(config)) as gateway:
                await eventually(lambda: gateway.connected, what="reconnected")
                with contextlib.suppress(AssertionError):  # the verdict counts what came
                    await eventually(lambda: len(observer.events) >= 1, timeout=5)
            accepted = await accepted_alarms(config.journal.path)
            copies = mqtt_copies(accepted, observer.events)
    finally:
        mosquitto.stop()
    print(f"[broker SIGKILL with a press queued for the gateway] {copies}")
    assert len(accepted) == 1, "the press the broker acknowledged was lost in its crash"
    assert (copies.lost, copies.same_id, copies.new_id, copies.order_violations) == (0, 0, 0, 0)
