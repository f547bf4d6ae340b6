"""A fire panel's transmission device over GB/T 26875.3 through the whole gateway to real
Mosquitto and VictoriaMetrics: its component 1-3-017 in fire raises the smoke alarm of the
detector mapped to it, with its place; confirmed only once journalled, so a gateway that
dies before the commit gets the frame again and journals it once; a lost confirm makes one
event, not two. The observer is an MQTT client outside the gateway."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.core.clock import ManualClock
from gateway.core.journaling import Receipt
from gateway.core.model import DeviceEvent
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.ops.store_query import export
from gateway.supervisor import Gateway
from simulators.gb26875_device import TransmissionDevice
from tests.drivers.gb26875_fixtures import CAPTURE_WRONG_CHECKSUM
from tests.drivers.gb26875_rig import PANEL, fire_devices
from tests.helpers import (
    Seen,
    Watcher,
    eventually,
    intake_open,
    make_config,
    running,
    unique_site,
)

DETECTOR = "smoke-3-2-017"


def _config(tmp_path: Path, mosquitto: Mosquitto, store_url: str, site: str, port: int,
            **gb26875: Any) -> Any:
    return make_config(tmp_path, site=site, broker_port=mosquitto.port, store_url=store_url,
                       devices=fire_devices(),
                       gb26875={"host": "127.0.0.1", "port": port, **gb26875})


def _alarm_ids(seen: list[Seen], site: str) -> set[str]:
    """The distinct ids of the detector's alarm events the observer saw."""
    ids = set()
    for s in seen:
        if s.topic == f"sc/{site}/smoke/{DETECTOR}/event":
            event = msgspec.json.decode(s.payload, type=DeviceEvent)
            if event.type == "alarm":
                ids.add(event.id)
    return ids


async def _drain(watcher: Watcher, into: list[Seen]) -> None:
    while not watcher.queue.empty():
        into.append(watcher.queue.get_nowait())


async def test_a_fire_on_component_1_3_017_raises_the_alert_of_its_detector(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    site = unique_site("fire")
    port = free_port()
    config = _config(tmp_path, mosquitto, victoria.url, site, port)
    async with Watcher(mosquitto.port, f"sc/{site}/#", "observer") as watcher, \
            running(Gateway(config)) as gateway:
        await intake_open(gateway)
        # bad input on the same port first: it is counted, and the device is unaffected
        _, noise = await asyncio.open_connection("127.0.0.1", port)
        noise.write(random.Random(3).randbytes(3000) + CAPTURE_WRONG_CHECKSUM + b"@@\x01")
        noise.close()
        async with TransmissionDevice("127.0.0.1", port, PANEL) as device:
            delivery = await device.fire("1-3-017", "3号楼2层东梯")
            assert delivery.confirmed
            event_seen = await watcher.next(
                lambda s: s.topic == f"sc/{site}/smoke/{DETECTOR}/event", timeout=10)
            event = msgspec.json.decode(event_seen.payload, type=DeviceEvent)
            assert event.type == "alarm"
            assert (event.fields["building"], event.fields["floor"], event.fields["zone"]) \
                == ("3", 2, "east stair")
            alert = await watcher.next(
                lambda s: s.topic == f"sc/{site}/alerts/smoke.alarm/{DETECTOR}", timeout=10)
            body = msgspec.json.decode(alert.payload)
            assert body["state"] == "firing"
            assert body["severity"] == "critical"
            assert "building 3" in body["message"]
        await eventually(lambda: gateway.counters.get("rejected", reason="bad_checksum") == 1,
                         what="the bad checksum counted")
        assert gateway.counters.get("rejected", reason="bad_start") >= 1
    series: list[Any] = []

    async def stored() -> bool:
        series[:] = await asyncio.to_thread(export, victoria.url,
                                            f'{{site="{site}",device="{DETECTOR}"}}')
        return bool(series)

    await eventually(stored, what="the detector's alarm in the store")


class _DiesAtTheCommit:
    """The gateway dies at the journal's commit of the first alarm (the rules journal an
    alarm with its alert): before it (nothing on disk) or right after it (on disk, the
    confirm not sent)."""

    def __init__(self, gateway: Gateway, after: bool) -> None:
        self.reached = asyncio.Event()
        self._after = after
        self._alarm = gateway.runner.alarm
        gateway.runner.alarm = self  # type: ignore[method-assign]

    async def __call__(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None,
                       *, whole: bool = False) -> list[int]:
        if not any(e.type == "alarm" for e in events):
            return await self._alarm(events, receipt, whole=whole)
        done = await self._alarm(events, receipt, whole=whole) if self._after else []
        self.reached.set()
        await asyncio.Event().wait()  # killed here
        return done


@pytest.mark.parametrize("after", [False, True], ids=["before_commit", "after_commit"])
async def test_a_gateway_killed_at_the_commit_gets_the_frame_again_and_journals_it_once(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, after: bool) -> None:
    site = unique_site("fire-kill")
    port = free_port()
    config = _config(tmp_path, mosquitto, victoria.url, site, port)
    seen: list[Seen] = []
    async with Watcher(mosquitto.port, f"sc/{site}/#", "observer") as watcher:
        first = Gateway(config)
        dies = _DiesAtTheCommit(first, after)
        task = asyncio.create_task(first.run(), name="test.gateway.first")
        await asyncio.wait_for(first.ready.wait(), 10)
        await intake_open(first)
        async with TransmissionDevice("127.0.0.1", port, PANEL, confirm_timeout_s=1.0,
                                      retries=20) as device:
            report = asyncio.create_task(device.fire("1-3-017"))
            await asyncio.wait_for(dies.reached.wait(), 10)
            assert not report.done()  # not confirmed
            task.cancel()  # the process dies: nothing after this point runs
            await asyncio.gather(task, return_exceptions=True)
            async with running(Gateway(config)) as second:
                delivery = await asyncio.wait_for(report, 30)
                assert delivery.confirmed
                assert delivery.sends >= 2
                await _wait_published(watcher, seen, site)
                batch = await second.journal.read_after(0)
                alarms = [e.record for e in batch.entries if isinstance(e.record, DeviceEvent)
                          and e.record.type == "alarm"]
                assert len(alarms) == 1
                assert alarms[0].device == DETECTOR
                # after the commit: the frame sent again is recognised by its receipt on disk
                assert second.counters.get("redelivered", device="fire-panel-3") >= int(after)
        await _drain(watcher, seen)
    assert len(_alarm_ids(seen, site)) == 1


async def _wait_published(watcher: Watcher, seen: list[Seen], site: str) -> None:
    """Until the observer has seen the detector's alarm (bounded)."""
    async with asyncio.timeout(10):
        while not _alarm_ids(seen, site):
            seen.append(await watcher.queue.get())


async def test_a_confirm_lost_on_the_wire_makes_one_event_not_two(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    site = unique_site("fire-lost")
    port = free_port()
    config = _config(tmp_path, mosquitto, victoria.url, site, port)
    seen: list[Seen] = []
    async with Watcher(mosquitto.port, f"sc/{site}/#", "observer") as watcher, \
            running(Gateway(config)) as gateway:
        await intake_open(gateway)
        async with TransmissionDevice("127.0.0.1", port, PANEL,
                                      confirm_timeout_s=0.5) as device:
            device.lose_confirms = 2
            delivery = await device.fire("1-3-017")
            assert delivery.confirmed
            assert delivery.sends >= 3  # more when a confirm came after the timeout
        await _wait_published(watcher, seen, site)
        await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                         what="everything published")
        assert gateway.counters.get("redelivered", device="fire-panel-3") == delivery.sends - 1
        await _drain(watcher, seen)
    assert len(_alarm_ids(seen, site)) == 1
    assert sum(s.topic == f"sc/{site}/smoke/{DETECTOR}/event" for s in seen) == 1


async def test_a_silent_transmission_device_goes_offline(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    site = unique_site("fire-silent")
    port = free_port()
    config = _config(tmp_path, mosquitto, victoria.url, site, port)
    clock = ManualClock()
    status = f"sc/{site}/smoke/fire-panel-3/status"
    async with Watcher(mosquitto.port, status, "observer") as watcher, \
            running(Gateway(config, clock=clock)) as gateway:
        await intake_open(gateway)
        async with TransmissionDevice("127.0.0.1", port, PANEL) as device:
            assert (await device.heartbeat()).confirmed
        online = await watcher.next(lambda s: True)
        assert online.payload == b"online"
        clock.advance(106)  # heartbeat_s = 60: silent for more than 1.75 intervals
        await watcher.next(lambda s: s.payload == b"offline")
        panel = gateway.board.get("fire-panel-3")
        assert panel is not None
        assert panel.value == "offline"
