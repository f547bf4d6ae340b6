"""A disk full to the last byte: alarms use the room held for them; without any, the broker
keeps them until there is room again.

The journal holds two kinds of room: its write-ahead log, allocated at start, and the alarm
reserve file. Some scenarios take the first away (`no_held_log`), as when the disk was
already full when the gateway started.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway import journal
from gateway.core.config import MetricsConfig
from gateway.core.kinds import make_event
from gateway.core.model import DeliveryClass, DeviceKind
from gateway.metrics import MetricsServer
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.status_report import read_status, status_path
from gateway.supervisor import Gateway
from tests.faults.oracle import Observer
from tests.faults.presses import judge_presses, numbered_sos, press_payload
from tests.faults.small_disk import fill, small_disk
from tests.helpers import eventually, make_config, running, unique_site

BUTTONS = 50


@pytest.fixture
def no_held_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "WAL_HELD", 0)


def _config(tmp_path: Path, disk: Path, site: str, broker: int, store: str,
            reserve_mb: float) -> Any:
    devices = [numbered_sos(f"sos-{n}", f"vendor/{site}/sos-{n}") for n in range(BUTTONS)]
    # no replay windows: they keep the last seconds' records from pruning, by design
    return make_config(tmp_path, site=site, store_url=store, devices=devices,
                       store={"url": store, "flush_interval_s": 0.2, "retry_min_s": 0.1,
                              "retry_max_s": 0.5, "replay_window_s": 0},
                       broker={"host": "127.0.0.1", "port": broker, "replay_window_s": 0,
                               "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
                       journal={"path": str(disk / "journal.db"),
                                                 "alarm_reserve_mb": reserve_mb,
                                                 "min_free_disk_mb": 1,
                                                 "prune_interval_s": 0.5})


async def _press_every_button(port: int, site: str, presses: int = 1) -> dict[str, list[int]]:
    """Each button pressed `presses` times; the source numbers every press."""
    sent: dict[str, list[int]] = {f"sos-{n}": [] for n in range(BUTTONS)}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"src-{site}") as source:
        for press in range(presses):
            for n in range(BUTTONS):
                seq = press * BUTTONS + n
                await source.publish(f"vendor/{site}/sos-{n}", press_payload(seq), qos=1)
                sent[f"sos-{n}"].append(seq)
    return sent


async def _delivered(gateway: Gateway, observer: Observer, sent: dict[str, list[int]],
                     store_url: str, site: str) -> None:
    async def done() -> bool:
        verdict = await judge_presses(sent, observer.events, store_url, site)
        return verdict.lost_mqtt == 0 and verdict.lost_store == 0

    await eventually(done, timeout=20, what="every press on MQTT and in the store")


async def test_full_disk_right_after_start_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("fault-full")
    with small_disk(tmp_path / "disk", 32) as disk:
        config = _config(tmp_path, disk, site, mosquitto.port, victoria.url, reserve_mb=4)
        async with Observer(mosquitto.port, site) as observer, \
                running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            assert gateway.journal.reserve_held == 4 * 2**20
            fill(disk)
            sent = await _press_every_button(mosquitto.port, site)
            await _delivered(gateway, observer, sent, victoria.url, site)
            assert gateway.counters.get("events_accepted", cls="alarm") == BUTTONS
            assert gateway.counters.get("dropped", cls="alarm") == 0
            fill(disk)  # whatever the alarms gave back: full to the last byte again
            # pruning and the status file keep working on the full disk
            await eventually(lambda: gateway.counters.get("journal_pruned") >= BUTTONS,
                             what="the delivered alarms pruned")
            before = read_status(status_path(config.journal)).ts
            await eventually(lambda: read_status(status_path(config.journal)).ts > before,
                             what="the status file written on the full disk")
            verdict = await judge_presses(sent, observer.events, victoria.url, site)
    verdict.print("disk full after start")
    assert verdict.clean, verdict


async def test_alarms_use_the_reserve_on_a_full_disk(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, no_held_log: None
) -> None:
    site = unique_site("fault-full")
    with small_disk(tmp_path / "disk", 24) as disk:
        config = _config(tmp_path, disk, site, mosquitto.port, victoria.url, reserve_mb=4)
        async with Observer(mosquitto.port, site) as observer, \
                running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            assert gateway.journal.reserve_held == 4 * 2**20
            fill(disk)
            sent = await _press_every_button(mosquitto.port, site)
            await _delivered(gateway, observer, sent, victoria.url, site)
            assert gateway.counters.get("events_accepted", cls="alarm") == BUTTONS
            assert gateway.counters.get("dropped", cls="alarm") == 0
            assert gateway.journal.reserve_held == 0  # given up to the alarms
            verdict = await judge_presses(sent, observer.events, victoria.url, site)
    verdict.print("disk full, alarm reserve")
    assert verdict.clean, verdict


async def test_alarms_refused_for_lack_of_space_come_again(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, no_held_log: None
) -> None:
    site = unique_site("fault-full")
    with small_disk(tmp_path / "disk", 16) as disk:
        config = _config(tmp_path, disk, site, mosquitto.port, victoria.url, reserve_mb=0)
        async with Observer(mosquitto.port, site) as observer, \
                running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            await eventually(lambda: status_path(config.journal).exists(),
                             what="the status file")
            filler = fill(disk)
            # two presses a button: the second must not overtake the first
            sent = await _press_every_button(mosquitto.port, site, presses=2)
            await eventually(lambda: gateway.counters.get("mqtt_not_acknowledged")
                             >= 2 * BUTTONS, what="every alarm refused")
            # how many commits still fit depends on where the write-ahead log stands (after
            # a checkpoint it takes commits in blocks it has, without new space): what must
            # hold is that the alarms it refused come again, below
            assert gateway.counters.get("dropped", cls="alarm", reason="disk_full") >= BUTTONS
            # said in the status file, written on the full disk
            await eventually(lambda: "dropped{cls=alarm,reason=disk_full}" in read_status(
                status_path(config.journal)).counters, what="the refusal in the status")
            metrics = await MetricsServer(gateway, MetricsConfig()).render()
            assert b'scgw_dropped_total{cls="alarm",reason="disk_full"}' in metrics
            filler.unlink()  # room again: the broker's next delivery is journalled
            await _delivered(gateway, observer, sent, victoria.url, site)
            assert gateway.counters.get("events_accepted", cls="alarm") == 2 * BUTTONS
        verdict = await judge_presses(sent, observer.events, victoria.url, site)
    verdict.print("disk full, no reserve, space freed")
    assert verdict.clean, verdict


async def test_alarms_refused_for_lack_of_space_come_again_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, no_held_log: None
) -> None:
    site = unique_site("fault-full")
    with small_disk(tmp_path / "disk", 16) as disk:
        config = _config(tmp_path, disk, site, mosquitto.port, victoria.url, reserve_mb=0)
        async with Observer(mosquitto.port, site) as observer:
            async with running(Gateway(config)) as gateway:
                await eventually(lambda: gateway.connected, what="connected")
                filler = fill(disk)
                sent = await _press_every_button(mosquitto.port, site)
                # what still fits where the write-ahead log stands is journalled, the rest
                # refused (how much fits depends on the log's position after a checkpoint)
                await eventually(lambda: gateway.counters.get("events_accepted", cls="alarm")
                                 + gateway.counters.get("dropped", cls="alarm",
                                                        reason="disk_full") >= BUTTONS,
                                 what="every alarm journalled or refused")
                assert gateway.counters.get("dropped", cls="alarm", reason="disk_full") > 0
            # counted once it stopped: the broker delivers the refused ones again on a new
            # connection 2 s after a refusal, and some may fit meanwhile (pruning frees room)
            before = gateway.counters.get("events_accepted", cls="alarm")
            assert before < BUTTONS
            filler.unlink()
            async with running(Gateway(config)) as gateway:
                await _delivered(gateway, observer, sent, victoria.url, site)
                assert gateway.counters.get("events_accepted", cls="alarm") == BUTTONS - before
            await asyncio.sleep(0)
        verdict = await judge_presses(sent, observer.events, victoria.url, site)
    verdict.print("disk full, no reserve, restart")
    assert verdict.clean, verdict


async def test_the_reserve_is_for_alarms_alone(tmp_path: Path, no_held_log: None) -> None:
    quota = journal.Quota(max_bytes=2**30, alarm_reserve=2 * 2**20, min_free_disk=0)
    with small_disk(tmp_path / "disk", 8) as disk:
        async with journal.Journal(disk / "j.db", quota=quota) as j:
            assert j.reserve_held == quota.alarm_reserve
            filler = fill(disk)
            # events go on while they fit in blocks the journal's files already have (small
            # pages fill a block's tail); the first that needs a new block is refused
            with pytest.raises(journal.JournalFullError) as refused:
                await _append_faults_until_refused(j)
            # the disk's own words, not a failed rollback hiding them
            assert refused.value.reason == "disk_full"
            assert "disk is full" in str(refused.value)
            assert j.reserve_held == quota.alarm_reserve  # not given up for an event
            alarm = make_event(DeviceKind.SMOKE, "s1", "alarm", 2000)
            assert alarm.cls is DeliveryClass.ALARM
            seq = await j.append(alarm)
            assert j.reserve_held == 0
            assert [e.record for e in (await j.read_after(seq - 1)).entries] == [alarm]
            filler.unlink()
            await j.move_cursor("x", seq)  # a commit measures the disk again
            assert j.reserve_held == quota.alarm_reserve  # held again once there is room


async def _append_faults_until_refused(j: journal.Journal) -> None:
    for n in range(1000):
        await j.append(make_event(DeviceKind.SMOKE, "s1", "fault", n + 1))
