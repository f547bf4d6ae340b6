"""An upstream's sink against a real HTTPS receiver: what the policy allows, at least once,
in order, with the cursor moved and the audit written only after the receiver confirmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.core.clock import ManualClock, SystemClock
from gateway.core.config import Location
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceEvent, DeviceKind, Severity, new_id
from gateway.core.upstream_config import WebhookUpstream
from gateway.journal import Journal
from gateway.upstreams.policy import policy_from_text
from gateway.upstreams.registry import transport_for
from gateway.upstreams.shaping import Shaper
from gateway.upstreams.sink import UpstreamSink, UpstreamState
from gateway.upstreams.transport import Setting
from tests.helpers import eventually
from tests.upstreams.receivers import SignedWebhook, signed_webhook
from tests.upstreams.test_sharing_policy import TEMPLATES

SECRET = "webhook-secret-of-the-platform"
KEY = b"pseudonym-key-of-this-platform"
PLACES = {"smoke-3-2-017": Location(building="3", floor=2),
          "elder-3-1-502": Location(building="3", unit="1", floor=5),
          "door-7-2": Location(building="7", unit="2")}
POLICY = """
rules:
  - id: smoke-alarms
    select: {records: [event], kind: [smoke], type: [alarm, fault]}
    fields: [ts, kind, type, device, building]
    place: building
    round: 1m
  - id: sos
    select: {records: [alert], kind: [elder_button]}
    fields: [state, building]
    pseudonymise: [device]
    basis: vital_interest
    reference: test
"""
T0 = 1_767_225_612_345  # a time within a minute, not on its start


def event(device: str, kind: DeviceKind, type_: str, ts: int = T0) -> DeviceEvent:
    return make_event(kind, device, type_, ts)


def sos(device: str, state: AlertState, ts: int = T0) -> Alert:
    return Alert(id=new_id(ts), ts=ts, rule="elder.sos", device=device,
                 kind=DeviceKind.ELDER_BUTTON, state=state, severity=Severity.CRITICAL,
                 since=ts, message="SOS at room 502")


@asynccontextmanager
async def sink_for(journal: Journal, hook: SignedWebhook, ca: Path, name: str = "district",
                   policy: str = POLICY) -> AsyncIterator[UpstreamSink]:
    config = WebhookUpstream(kind="webhook", name=name, policy=Path("p.yaml"), url=hook.url,
                             secret_env="SECRET", ca_file=ca, retry_min_s=0.02,
                             retry_max_s=0.1, timeout_s=5)
    clock = SystemClock()
    transport = transport_for(config, Setting("c1", {"SECRET": SECRET}, clock))
    shaper = Shaper(name, policy_from_text(policy), "c1", KEY, PLACES.get)
    sink = UpstreamSink(config, shaper, transport, journal, clock, Counters())
    task = asyncio.create_task(sink.run(), name=f"test.upstream[{name}]")
    try:
        yield sink
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_only_what_the_policy_allows_leaves_and_is_audited(
        tmp_path: Path, platform_pki: dict[str, Path]) -> None:
    async with Journal(tmp_path / "journal.db") as journal, \
            signed_webhook(SECRET.encode(), platform_pki["cert"], platform_pki["key"]) as hook:
        alarm = event("smoke-3-2-017", DeviceKind.SMOKE, "alarm")
        door = event("door-7-2", DeviceKind.ACCESS, "granted")
        press = event("elder-3-1-502", DeviceKind.ELDER_BUTTON, "press")
        firing = sos("elder-3-1-502", AlertState.FIRING)
        await journal.commit([alarm, door, press, firing])
        async with sink_for(journal, hook, platform_pki["ca"]) as sink:
            await eventually(lambda: sink.cursor == journal.last_seq, what="all looked at")
        rows = await journal.read_shared(0)
    pseudonym = sink._shaper.pseudonym("elder-3-1-502")
    assert hook.records == [
        {"id": alarm.id, "ts": T0 - T0 % 60_000, "kind": "smoke", "type": "alarm",
         "device": "smoke-3-2-017", "building": "3"},
        {"id": f"{firing.id}:firing", "state": "firing", "building": "3", "device": pseudonym},
    ]
    assert pseudonym != "elder-3-1-502"
    assert len(pseudonym) == 32
    assert hook.refused == []
    assert [(r.upstream, r.record_id, r.rule, r.subject, r.fields, r.personal, r.basis)
            for r in rows] == [
        ("district", alarm.id, "smoke-alarms", "smoke-3-2-017", "id,ts,kind,type,device,building",
         "", ""),
        ("district", f"{firing.id}:firing", "sos", "elder-3-1-502", "id,state,building,device",
         "state:health:clear,device:personal:pseudonym", "vital_interest: test")]


async def test_an_upstream_down_keeps_its_backlog_and_then_delivers_it_once_in_order(
        tmp_path: Path, platform_pki: dict[str, Path]) -> None:
    cert, key = platform_pki["cert"], platform_pki["key"]
    async with Journal(tmp_path / "journal.db") as journal, \
            signed_webhook(SECRET.encode(), cert, key) as down, \
            signed_webhook(SECRET.encode(), cert, key) as up:
        down.down = True
        async with sink_for(journal, down, platform_pki["ca"], "down") as held, \
                sink_for(journal, up, platform_pki["ca"], "up") as other:
            sent: list[DeviceEvent] = []
            for n in range(30):
                device = ("smoke-3-2-017", "smoke-3-5-001", "smoke-7-1")[n % 3]
                sent.append(event(device, DeviceKind.SMOKE, ("alarm", "fault")[n % 2], T0 + n))
                await journal.commit([sent[-1]])
            # the other upstream is not held back by the one that is down
            started = time.monotonic()
            await eventually(lambda: len(up.records) == 30, what="the other upstream")
            other_took = time.monotonic() - started
            await eventually(lambda: held.state is UpstreamState.DOWN, what="found down")
            await asyncio.sleep(0.3)  # a few retries while it is down
            assert held.cursor == 0
            assert await journal.read_shared(0) == [
                r for r in await journal.read_shared(0) if r.upstream == "up"]
            down.down = False
            await eventually(lambda: held.cursor == journal.last_seq, what="backlog drained")
            assert held.state is UpstreamState.UP
            assert other.state is UpstreamState.UP
        rows = await journal.read_shared(0)
    print(f"the other upstream took {other_took:.2f} s")
    assert other_took < 5.0  # 0.02 s here at load 7; the one down retries every 0.1 s
    assert [r["id"] for r in down.records] == [e.id for e in sent]  # once each, in order
    assert sorted(r.record_id for r in rows if r.upstream == "down") == sorted(
        e.id for e in sent)
    assert all(r.deliveries == 1 for r in rows)


async def test_the_street_office_gets_hourly_counts_kept_across_a_restart(
        tmp_path: Path, platform_pki: dict[str, Path]) -> None:
    policy = (TEMPLATES / "street_office_grid.yaml").read_text()
    start = 1_767_225_600_000  # on the hour
    clock = ManualClock(start + 10 * 60_000)
    places = {"door-7-1": Location(building="7"), "door-7-2": Location(building="7"),
              "door-3-1": Location(building="3")}
    async with Journal(tmp_path / "journal.db") as journal, \
            signed_webhook(SECRET.encode(), platform_pki["cert"], platform_pki["key"]) as hook:
        hook.now = lambda: clock.now_ms() / 1000  # the platform's clock is the gateway's

        def street_sink() -> UpstreamSink:
            config = WebhookUpstream(kind="webhook", name="street", policy=Path("p.yaml"),
                                     url=hook.url, secret_env="SECRET",
                                     ca_file=platform_pki["ca"])
            transport = transport_for(config, Setting("c1", {"SECRET": SECRET}, clock))
            shaper = Shaper("street", policy_from_text(policy), "c1", None, places.get)
            return UpstreamSink(config, shaper, transport, journal, clock, Counters())

        first = street_sink()
        task = asyncio.create_task(first.run())
        for n, device in enumerate(["door-7-1", "door-7-2", "door-3-1", "door-7-1"]):
            await journal.commit([event(device, DeviceKind.ACCESS, "granted", start + n)])
        await journal.commit([event("door-7-1", DeviceKind.ACCESS, "heartbeat", start + 9)])
        await eventually(lambda: first.cursor == journal.last_seq, what="counted")
        task.cancel()
        await asyncio.wait([task])
        # a restart: the counts come back from the journal, none counted twice
        second = street_sink()
        task = asyncio.create_task(second.run())
        await journal.commit([event("door-3-1", DeviceKind.ACCESS, "door_opened", start + 10)])
        await eventually(lambda: second.cursor == journal.last_seq, what="counted again")
        assert hook.records == []  # the hour has not ended
        clock.advance(50 * 60)  # the end of the hour
        await eventually(lambda: len(hook.records) == 2, what="the hour's counts")
        task.cancel()
        await asyncio.wait([task])
        rows = await journal.read_shared(0)
    assert sorted(hook.records, key=lambda r: r["building"]) == [
        {"id": f"door-events-hourly:{start}:building=3", "rec": "count", "site": "c1",
         "rule": "door-events-hourly", "period_start": start, "period_s": 3600, "count": 2,
         "building": "3"},
        {"id": f"door-events-hourly:{start}:building=7", "rec": "count", "site": "c1",
         "rule": "door-events-hourly", "period_start": start, "period_s": 3600, "count": 3,
         "building": "7"}]
    assert sorted(r.subject for r in rows) == ["building-3", "building-7"]


async def _until_sleeping(clock: ManualClock) -> float:
    """The next deadline once a sleeper waits on `clock` (the sink's backoff or timer)."""
    await eventually(lambda: bool(clock.deadlines()), what="the sink waiting on its clock",
                     interval=0.005)
    return clock.deadlines()[0]


async def test_five_minutes_down_in_the_sinks_own_time_then_back(
        tmp_path: Path, platform_pki: dict[str, Path]) -> None:
    clock = ManualClock(int(time.time() * 1000))
    async with Journal(tmp_path / "journal.db") as journal, \
            signed_webhook(SECRET.encode(), platform_pki["cert"], platform_pki["key"]) as hook:
        hook.now = lambda: clock.now_ms() / 1000
        hook.down = True
        config = WebhookUpstream(kind="webhook", name="district", policy=Path("p.yaml"),
                                 url=hook.url, secret_env="SECRET", ca_file=platform_pki["ca"],
                                 retry_min_s=1.0, retry_max_s=60.0, batch=7)
        transport = transport_for(config, Setting("c1", {"SECRET": SECRET}, clock))
        counters = Counters()
        sink = UpstreamSink(config, Shaper("district", policy_from_text(POLICY), "c1", KEY,
                                           PLACES.get), transport, journal, clock, counters)
        task = asyncio.create_task(sink.run())
        sent = []
        for n in range(20):
            sent.append(event(("smoke-3-2-017", "smoke-7-1")[n % 2], DeviceKind.SMOKE,
                              "alarm", clock.now_ms() + n))
        await journal.commit(sent)
        started = clock.monotonic()
        deadline = await _until_sleeping(clock)
        while deadline - started < 300:  # five minutes of the sink's clock
            clock.advance(deadline - clock.monotonic())
            deadline = await _until_sleeping(clock)  # tried, failed, waiting again
            assert sink.cursor == 0
        retries = counters.get("upstream_retries", upstream="district", reason="http_503")
        hook.down = False
        clock.advance(deadline - clock.monotonic())
        await eventually(lambda: sink.cursor == journal.last_seq, what="the backlog drained")
        task.cancel()
        await asyncio.wait([task])
    # backoff doubled up to its cap: a handful of attempts, not one a second
    assert 5 <= retries <= 60
    assert [r["id"] for r in hook.records] == [e.id for e in sent]
    assert [len(b) for b in hook.batches] == [7, 7, 6]


async def test_a_delay_holds_a_record_until_its_time(
        tmp_path: Path, platform_pki: dict[str, Path]) -> None:
    clock = ManualClock(int(time.time() * 1000))
    delayed = POLICY.replace("    round: 1m\n", "    round: 1m\n    delay: 10m\n")
    async with Journal(tmp_path / "journal.db") as journal, \
            signed_webhook(SECRET.encode(), platform_pki["cert"], platform_pki["key"]) as hook:
        hook.now = lambda: clock.now_ms() / 1000
        config = WebhookUpstream(kind="webhook", name="d", policy=Path("p.yaml"), url=hook.url,
                                 secret_env="SECRET", ca_file=platform_pki["ca"])
        transport = transport_for(config, Setting("c1", {"SECRET": SECRET}, clock))
        sink = UpstreamSink(config, Shaper("d", policy_from_text(delayed), "c1", KEY,
                                           PLACES.get), transport, journal, clock, Counters())
        task = asyncio.create_task(sink.run())
        alarm = event("smoke-3-2-017", DeviceKind.SMOKE, "alarm", clock.now_ms())
        await journal.commit([alarm])
        deadline = await _until_sleeping(clock)
        assert deadline == pytest.approx(clock.monotonic() + 600, abs=0.01)
        clock.advance(599)
        await asyncio.sleep(0.05)
        assert hook.records == []
        clock.advance(1)
        await eventually(lambda: len(hook.records) == 1, what="sent when due")
        task.cancel()
        await asyncio.wait([task])
    assert hook.records[0]["id"] == alarm.id
