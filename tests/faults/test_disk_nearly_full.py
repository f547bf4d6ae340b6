"""Disk nearly full and journal quota: events are refused first, alarms still get through."""

from __future__ import annotations

import os
from pathlib import Path

import aiomqtt

from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind, Scalar
from gateway.journal import Journal, JournalFullError, Quota
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.faults.burst import verdict_after
from tests.faults.oracle import Observer
from tests.helpers import eventually, make_config, running, sos_mqtt, unique_site


async def test_disk_nearly_full_refuses_events_not_alarms(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("fault-disk")
    topic = f"vendor/{site}/sos-1"
    stat = os.statvfs(tmp_path)
    free_mb = stat.f_bavail * stat.f_frsize / 2**20
    device = sos_mqtt("sos-1", topic)
    device["mqtt"]["events"] = {"single": "press", "low": "low_battery"}
    # the file system is "nearly full": less free space than the journal must keep free
    # (by far: tests running beside this one may free gigabytes meanwhile)
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         store_url=victoria.url, devices=[device],
                         journal={"path": str(tmp_path / "journal.db"),
                                  "min_free_disk_mb": free_mb + 10**7})
    async with Observer(mosquitto.port, site) as observer, running(Gateway(config)) as gateway, \
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"src-{site}") as source:
        await eventually(lambda: gateway.connected, what="connected")
        for n in range(100):
            action = b"single" if n % 2 else b"low"
            await source.publish(topic, b'{"action": "' + action + b'"}', qos=1)
        await eventually(lambda: gateway.counters.get("ingress_messages") == 100,
                         what="all handled")
        assert gateway.counters.get("dropped", cls="event", reason="disk_full") == 50
        assert gateway.counters.get("events_accepted", cls="alarm") == 50
        verdict = await verdict_after(gateway, observer, victoria.url, site)
    verdict.extra["refused_events"] = 50
    verdict.print("disk nearly full")
    assert verdict.accepted == 50
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates) == (0, 0, 0)


async def test_quota_keeps_a_reserve_for_alarms(tmp_path: Path) -> None:
    quota = Quota(max_bytes=400_000, alarm_reserve=200_000, min_free_disk=0)
    async with Journal(tmp_path / "j.db", quota=quota) as journal:
        big: dict[str, Scalar] = {f"f{n}": n for n in range(60)}
        events, reason = await _fill(journal, "fault", big)
        assert reason == "journal_quota"
        assert journal.used_bytes >= quota.max_bytes - quota.alarm_reserve
        alarms, reason = await _fill(journal, "alarm", big)
        assert reason == "journal_full"
        assert events > 50
        assert alarms > 50  # the reserve held room for alarms after events were refused
        # once the sinks have passed them, records are pruned and the room comes back
        for consumer in ("mqtt", "store", "rules"):
            await journal.move_cursor(consumer, journal.last_seq)
        # (the newest stays: it holds the sequence)
        assert await journal.prune(["mqtt", "store", "rules"]) == events + alarms - 1
        await journal.move_cursor("x", 0)  # any commit measures the journal again
        assert journal.used_bytes < quota.max_bytes - quota.alarm_reserve
        await journal.append(make_event(DeviceKind.SMOKE, "s1", "fault", 10**6, big))


async def _fill(journal: Journal, event_type: str, fields: dict[str, Scalar]
                ) -> tuple[int, str]:
    """Append until the journal refuses; how many went in, and why it refused."""
    n = 0
    while True:
        try:
            await journal.append(make_event(DeviceKind.SMOKE, "s1", event_type, n, dict(fields)))
        except JournalFullError as exc:
            return n, exc.reason
        n += 1
