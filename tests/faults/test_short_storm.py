"""A short storm: the broker hands the gateway a backlog of readings it queued while the
gateway was away. The backlog is seen (the intake gauges, `scgw status` in words) and
the built-in alert gateway.overloaded is raised and resolved through the normal alert path
(journalled, published retained), each seen rising and clearing; an SOS pressed in the
storm alerts, and every queued reading is taken once.

Thresholds are shortened (a lane behind for 0.1 s over 0.1 s) so that a backlog of a
second's drain shows the whole course (the queue is drained in about a second: a test of
a longer storm would take the suite's time); the figures of the full storm are benchmarks
(bench/storm.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gateway import status_report, supervisor
from gateway.core.model import Alert, AlertState, DeviceEvent
from gateway.ops.private_servers import Mosquitto
from gateway.status_report import intake_words
from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt, unique_site
from tests.webhook import webhook

QUEUED = 16_000  # readings the broker holds for the gateway's bulk session
CHUNK = 500
STORM_PACE_S = 0.05  # the bulk session's reads, at most one per this (READ_PACE_S otherwise)


async def _pile_up(port: int, topic: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"storm-{unique_site()}",
                              max_inflight_messages=CHUNK) as client:
        for first in range(0, QUEUED, CHUNK):
            await asyncio.gather(*(
                client.publish(topic, json.dumps({"body_temp_c": 36.5, "n": n}), qos=1)
                for n in range(first, first + CHUNK)))


async def test_the_backlog_and_gateway_overloaded_rise_and_clear_in_a_storm(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await _storm(tmp_path, mosquitto, monkeypatch, stack)


async def _storm(tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
                 stack: contextlib.AsyncExitStack) -> None:
    monkeypatch.setattr(supervisor, "OVERLOAD_SAMPLE_S", 0.05)
    monkeypatch.setattr(status_report, "BEHIND_S", 0.1)  # words, as the thresholds: shorter
    site = unique_site("storm")
    gate_topic, sos_topic = f"vendor/{site}/gate-1", f"vendor/{site}/sos-1"
    gate = {"id": "gate-1", "kind": "temp_gate", "transport": "mqtt",
            "mqtt": {"topic": gate_topic, "readings": ["body_temp_c"]}}
    hook = await stack.enter_async_context(webhook())
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("groups:\n" + "".join(
        f'  {group}: ["{hook.url(group)}"]\n' for group in
        ("duty_office", "clinic", "property_manager", "fire_warden", "maintenance"))
        + f'devices:\n  sos-1:\n    family: ["{hook.url("family")}"]\n')
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[gate, sos_mqtt("sos-1", sos_topic)], shutdown_timeout_s=0.5,
                         contacts_file=str(contacts),
                         limits={"device_rate_hz": 0, "overloaded_after_s": 0.1,
                                 "overloaded_hold_s": 0.1, "overloaded_clear_s": 0.2})
    async with running(Gateway(config)) as gateway:  # both sessions made, subscribed
        await eventually(lambda: gateway.link.connected and gateway.bulk_link is not None
                         and gateway.bulk_link.connected, what="both sessions connected")
    await _pile_up(mosquitto.port, gate_topic)
    overloaded = f"sc/{site}/alerts/gateway.overloaded/gateway"
    stormed = Gateway(config)
    # the bulk session read at most every 50 ms: the backlog then stays in the socket for
    # several reads, whatever the machine's load. Otherwise, on a loaded machine, the
    # gateway reads faster than the broker writes and never counts as behind
    assert stormed.bulk_link is not None
    stormed.bulk_link.pace_s = STORM_PACE_S
    async with Watcher(mosquitto.port, overloaded, "duty-office") as office, \
            Watcher(mosquitto.port, f"sc/{site}/alerts/elder.sos/sos-1", "sos") as sos, \
            running(stormed) as gateway:
        ages: list[float] = []
        words: list[str] = []

        async def sample() -> None:
            while True:
                ages.append(gateway.intake_backlog()["bulk"]["oldest_s"])
                words.append(intake_words(gateway.snapshot().intake))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        firing = await office.next(lambda s: msgspec.json.decode(
            s.payload, type=Alert).state is AlertState.FIRING, timeout=30)
        await office.publish(sos_topic, b'{"action": "single"}')  # in the storm
        await sos.next(lambda s: True)
        resolved = await office.next(lambda s: msgspec.json.decode(
            s.payload, type=Alert).state is AlertState.RESOLVED, timeout=60)
        await eventually(lambda: gateway.counters.get(
            "ingress_messages", device="gate-1") == QUEUED, timeout=60,
            what="every queued reading taken")
        # the sampler's last look may come just before the last reading was handled
        await eventually(lambda: gateway.intake_backlog()["bulk"]["oldest_s"] < 0.2,
                         what="the bulk lane's age back under the threshold")
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        batch = await gateway.journal.read_after(0, 100_000)
        events = [e.record for e in batch.entries
                  if isinstance(e.record, DeviceEvent) and e.record.device == "gateway"]
        await eventually(lambda: "duty_office" in hook.paths(), what="the duty office told")
        after = gateway.intake_backlog()
        final_words = intake_words(gateway.snapshot().intake)
    assert msgspec.json.decode(firing.payload, type=Alert).kind == "gateway"
    assert msgspec.json.decode(resolved.payload, type=Alert).device == "gateway"
    assert [e.type for e in events] == ["overloaded", "caught_up"]
    assert float(events[0].fields["behind_s"]) > 0.1
    assert max(ages) > 0.1
    assert any("bulk behind by" in w for w in words), set(words)
    assert after["bulk"]["messages"] == 0
    assert final_words == "intake: keeping up"
    told = [body for path, body, _ in hook.received if path == "duty_office"]
    assert "behind by" in told[0]["message"], told
    async with Watcher(mosquitto.port, overloaded, "later") as later:
        kept = await later.next(lambda s: s.retain)  # what the broker keeps
    assert msgspec.json.decode(kept.payload, type=Alert).state is AlertState.RESOLVED
