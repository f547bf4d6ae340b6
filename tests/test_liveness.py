"""Device status: offline within two heartbeat intervals of silence, online on a good message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.core.clock import ManualClock
from gateway.core.model import DeviceEvent, DeviceKind
from gateway.journal import Journal
from gateway.ops.private_servers import Mosquitto
from gateway.status import Status, StatusBoard, supervise
from gateway.supervisor import Gateway
from tests.helpers import (
    Watcher,
    eventually,
    make_config,
    refuse_commits,
    running,
    sos_mqtt,
    unique_site,
)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_silent_device_goes_offline_within_two_intervals_and_back_online() -> None:
    clock = ManualClock()
    board = StatusBoard()
    board.add("sos-1", DeviceKind.ELDER_BUTTON, heartbeat_s=60, now=clock.monotonic())
    board.add("wired", DeviceKind.ELDER_BUTTON, heartbeat_s=0, now=clock.monotonic())
    board.set("wired", Status.ONLINE)
    task = asyncio.create_task(supervise(board, clock))
    try:
        await _settle()
        board.seen("sos-1", clock.monotonic())
        assert board.get("sos-1") is Status.ONLINE
        for _ in range(6):  # 90 s: one missed heartbeat is tolerated
            clock.advance(15)
            await _settle()
        assert board.get("sos-1") is Status.ONLINE
        clock.advance(15)  # 105 s: 1.75 intervals, well within two
        await _settle()
        assert board.get("sos-1") is Status.OFFLINE
        assert board.get("wired") is Status.ONLINE  # no heartbeat: never expires
        board.seen("sos-1", clock.monotonic())
        assert board.get("sos-1") is Status.ONLINE
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_device_never_heard_from_goes_offline_after_two_intervals() -> None:
    clock = ManualClock()
    board = StatusBoard()
    board.add("sos-2", DeviceKind.ELDER_BUTTON, heartbeat_s=10, now=clock.monotonic())
    assert board.get("sos-2") is None
    clock.advance(17)
    assert board.expire(clock.monotonic()) == []
    clock.advance(1)
    assert board.expire(clock.monotonic()) == ["sos-2"]
    assert board.changed.is_set()


async def _status_events(journal: Journal) -> list[str]:
    batch = await journal.read_after(0, limit=1000)
    return [f"{e.record.device}:{e.record.type}" for e in batch.entries
            if isinstance(e.record, DeviceEvent) and e.record.type in ("online", "offline")]


async def test_a_device_offline_at_shutdown_is_journalled_online_when_it_returns(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("live")
    topic = f"zigbee2mqtt/{site}/sos-1"
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[sos_mqtt("sos-1", topic, heartbeat_s=60),
                                  sos_mqtt("sos-2", topic + "b", heartbeat_s=60)],
                         shutdown_timeout_s=0.3)
    clock = ManualClock()
    hello = b'{"battery": 90}'
    async with running(Gateway(config, clock=clock)) as gateway, Watcher(
            mosquitto.port, "none/#") as device:
        await eventually(lambda: gateway.connected, what="connected")
        for name in ("sos-1", "sos-2"):
            await device.publish(topic if name == "sos-1" else topic + "b", hello)
            await eventually(lambda n=name: gateway.board.get(n) is Status.ONLINE,  # type: ignore[misc]
                             what=f"{name} online")
        clock.advance(120)  # both silent for two heartbeats
        await eventually(lambda: gateway.board.get("sos-1") is Status.OFFLINE, what="offline")
        await device.publish(topic + "b", hello)  # sos-2 comes back before the restart
        await eventually(lambda: gateway.board.get("sos-2") is Status.ONLINE, what="sos-2 back")
        await eventually(lambda: gateway.runner.idle, what="rules idle")
    async with running(Gateway(config, clock=ManualClock())) as gateway, Watcher(
            mosquitto.port, "none/#") as device:
        await eventually(lambda: gateway.connected, what="connected again")
        await device.publish(topic, hello)
        await device.publish(topic + "b", hello)
        await eventually(lambda: gateway.board.get("sos-1") is Status.ONLINE
                         and gateway.board.get("sos-2") is Status.ONLINE, what="both online")
        # sos-1 was offline at shutdown, so its return is news; sos-2's is not
        expected = ["sos-1:offline", "sos-2:offline", "sos-2:online", "sos-1:online"]

        async def journalled() -> bool:
            return await _status_events(gateway.journal) == expected

        await eventually(journalled, what="sos-1 journalled online")
        assert await _status_events(gateway.journal) == expected


async def test_devices_gone_offline_together_are_journalled_in_one_commit(
        tmp_path: Path) -> None:
    """A bridge that drops, a sweep that finds a building's sensors silent: the offline
    events and the list of offline devices go in one commit, not one per device."""
    gateway = _found_online(tmp_path, 200)
    async with gateway.journal as journal:
        task = asyncio.create_task(gateway._journal_status_changes())
        try:
            await eventually(lambda: gateway.board.transitions.empty(), what="start taken")
            before = journal.commits + journal.lazy_commits
            for n in range(200):
                gateway.board.unreachable(f"sos-{n}")
            await eventually(lambda: journal.last_seq == 200, what="the offline events")
            assert journal.commits + journal.lazy_commits == before + 1
            for n in range(100):
                gateway.board.seen(f"sos-{n}", 1.0)
            await eventually(lambda: journal.last_seq == 300, what="the online events")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        entries = (await journal.read_after(0, 500)).entries
        assert [e.record.type for e in entries if isinstance(e.record, DeviceEvent)] == (
            ["offline"] * 200 + ["online"] * 100)
        stored = await journal.read_state("status.offline")
    assert stored is not None
    assert len(json.loads(stored)) == 100


async def test_a_status_change_the_journal_refused_is_journalled_once_it_writes_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The board tells a change once: a device gone offline whose event the journal
    refused (an I/O error, injected twice) is handed over again, with the list of offline
    devices, and the changes that came meanwhile follow it."""
    refused = refuse_commits(monkeypatch, 2, lambda records: any(
        isinstance(r, DeviceEvent) and r.type == "offline" for r in records))
    gateway = _found_online(tmp_path, 2)
    async with gateway.journal as journal:
        task = asyncio.create_task(gateway._journal_status_changes())
        try:
            await eventually(lambda: gateway.board.transitions.empty(), what="start taken")
            gateway.board.unreachable("sos-0")
            await eventually(lambda: len(refused) == 1, what="the first refusal")
            gateway.board.unreachable("sos-1")  # while the first waits to be handed over
            await eventually(lambda: journal.last_seq == 2, timeout=15,
                             what="both offline events")
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        entries = (await journal.read_after(0, 10)).entries
        stored = await journal.read_state("status.offline")
    assert [[(r.device, r.type) for r in rs if isinstance(r, DeviceEvent)]
            for rs in refused] == [[("sos-0", "offline")]] * 2
    assert [(e.record.device, e.record.type) for e in entries
            if isinstance(e.record, DeviceEvent)] == [("sos-0", "offline"),
                                                     ("sos-1", "offline")]
    assert stored == b'["sos-0", "sos-1"]'
    assert gateway.counters.get("journal_retries", device="sos-0") == 2


def _found_online(tmp_path: Path, buttons: int) -> Gateway:
    """A gateway (not running) whose buttons its board found online at start: no event."""
    devices = [sos_mqtt(f"sos-{n}", f"vendor/sos-{n}") for n in range(buttons)]
    gateway = Gateway(make_config(tmp_path, site=unique_site("gone"), devices=devices))
    for n in range(buttons):
        gateway.board.add(f"sos-{n}", DeviceKind.ELDER_BUTTON, 60, 0.0)
        gateway.board.set(f"sos-{n}", Status.ONLINE)
    return gateway
