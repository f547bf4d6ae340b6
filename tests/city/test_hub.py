"""The hub against a real three-node cluster and a real VictoriaMetrics: set-up, the store,
the city-wide alert state, the read-only board, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.js.api import ConsumerConfig

from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Severity,
    new_id,
)
from gateway.core.problems import ConfigError
from gateway.ops.private_servers import NatsCluster, VictoriaMetrics
from gateway.ops.store_query import export
from hub.alerts import CityAlert, alert_key
from hub.config import parse_hub_config
from hub.provision import provision
from tests.city.rig import (
    CityNames,
    city_client,
    hub_config,
    hub_raw,
    publish,
    running_hub,
    toml,
)
from tests.helpers import eventually

T0 = int(time.time() * 1000) // 1000 * 1000  # within the store's retention


def _event(n: int, device: str = "e1") -> DeviceEvent:
    return DeviceEvent(id=new_id(T0 + n), ts=T0 + n, kind=DeviceKind.ELDER_BUTTON,
                       device=device, type="press", cls=DeliveryClass.ALARM, fields={"n": n})


def _alert(state: AlertState, ts: int, alert_id: str = "al-1") -> Alert:
    return Alert(id=alert_id, ts=ts, rule="elder.sos", device="e1",
                 kind=DeviceKind.ELDER_BUTTON, state=state, severity=Severity.CRITICAL,
                 since=T0)


async def _samples(store: str, names: CityNames, site: str) -> dict[tuple[str, int], int]:
    series = await asyncio.to_thread(
        export, store, f'sc_event_count{{district="{names.district}",site="{site}"}}')
    counted: dict[tuple[str, int], int] = {}
    for s in series:
        for ts in s.timestamps:
            counted[(s.labels["device"], ts)] = counted.get((s.labels["device"], ts), 0) + 1
    return counted


async def test_init_makes_a_replicated_stream_and_is_repeatable(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url)
    first = await provision(config, {})
    again = await provision(config, {})
    assert first[0].startswith(f"stream {city.stream} created (3 replicas")
    assert again[0] == f"stream {city.stream} updated"
    async with city_client(nats_cluster) as js:
        info = await js.stream_info(city.stream)
        consumer = await js.consumer_info(city.stream, "hub")
    assert (info.config.num_replicas, info.config.duplicate_window) == (3, 3600.0)
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2
    assert isinstance(consumer.config, ConsumerConfig)
    assert consumer.config.ack_wait == 2.0


def test_a_missing_secret_is_named_with_its_key() -> None:
    raw = {"nats": {"servers": ["nats://127.0.0.1:4222"], "user": "hub",
                    "password_env": "CITY_NATS_PASSWORD"},
           "store": {"url": "http://127.0.0.1:8428"}}
    with pytest.raises(ConfigError) as refused:
        parse_hub_config(raw, Path("hub.toml"), {})
    assert [str(p) for p in refused.value.problems] == [
        "nats.password_env: the environment variable CITY_NATS_PASSWORD is not set"]
    assert parse_hub_config(raw, Path("hub.toml"), {"CITY_NATS_PASSWORD": "x"}).nats.user


def test_acknowledging_is_granted_per_compound_or_district_and_names_who() -> None:
    raw: dict[str, Any] = {"nats": {"servers": ["nats://127.0.0.1:4222"]},
                           "store": {"url": "http://127.0.0.1:8428"},
                           "board": {"ack_granted": ["north/c1", "south/*"]}}
    with pytest.raises(ConfigError) as refused:
        parse_hub_config(raw, Path("hub.toml"), {})
    assert [str(p) for p in refused.value.problems] == [
        "board.ack_granted: needs board.user_header: an acknowledgement names who made it "
        "(the city's authenticating proxy says who)"]
    raw["board"]["user_header"] = "X-Remote-User"
    board = parse_hub_config(raw, Path("hub.toml"), {}).board
    assert [board.grants(*c) for c in (("north", "c1"), ("north", "c2"), ("south", "c9"))] == [
        True, False, True]


async def test_records_reach_the_store_once_even_when_published_twice(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url)
    async with running_hub(config) as hub, city_client(nats_cluster) as js:
        events = [_event(n) for n in range(20)]
        for event in events:
            await publish(js, city.district, "c1", event)
        for event in events[:5]:  # again, as a compound whose confirmation was lost
            await publish(js, city.district, "c1", event)
        for event in events[5:10]:  # and beyond the duplicate window: a new message id
            await publish(js, city.district, "c1", event, msg_id=f"late-{event.id}")
        await eventually(lambda: hub.counters.get("hub_records", kind="deviceevent") == 25,
                         what="every message handled")
        stored = await _samples(victoria.url, city, "c1")
    assert stored == {("e1", e.ts): 1 for e in events}


async def test_the_city_alert_state_never_moves_back(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url)
    async with running_hub(config) as hub, city_client(nats_cluster) as js:
        await publish(js, city.district, "c1", _alert(AlertState.FIRING, T0))
        await publish(js, city.district, "c2", _alert(AlertState.FIRING, T0 + 1, "al-2"))
        await publish(js, city.district, "c1", _alert(AlertState.RESOLVED, T0 + 10))
        # the firing transition again, as a redelivery after the resolution
        await publish(js, city.district, "c1", _alert(AlertState.FIRING, T0), msg_id="again")
        await eventually(lambda: hub.counters.get("hub_records", kind="alert") == 4,
                         what="every transition handled")
        # the bucket itself (the hub's watched copy follows it a moment later)
        kv = await js.key_value(city.bucket)
        held = {}
        for site, alert_id in (("c1", "al-1"), ("c2", "al-2")):
            entry = await kv.get(alert_key(city.district, site, alert_id))
            assert entry.value is not None
            held[(site, alert_id)] = msgspec.json.decode(entry.value, type=CityAlert).state
        watched = hub.alerts
        assert watched is not None
        await eventually(lambda: {(a.site, a.id): a.state for a in watched.current.values()}
                         == held, what="the watched copy as the bucket")
    assert held == {("c1", "al-1"): AlertState.RESOLVED, ("c2", "al-2"): AlertState.FIRING}
    assert hub.counters.get("hub_alert_transitions") == 3


async def test_the_board_lists_alerts_and_events_with_their_compound_and_changes_nothing(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url)
    base = f"http://127.0.0.1:{config.board.port}"
    async with running_hub(config) as hub, city_client(nats_cluster) as js:
        await publish(js, city.district, "c7", _alert(AlertState.FIRING, T0, "al-7"))
        event = _event(1, "e8")
        await publish(js, city.district, "c8", event)
        await eventually(lambda: hub.alerts is not None and len(hub.alerts.active()) == 1
                         and hub.feed is not None and len(hub.feed.events) == 1,
                         what="the alert and the event on the board")
        board = json.loads(await asyncio.to_thread(_get, f"{base}/api/board"))
        events = json.loads(await asyncio.to_thread(_get, f"{base}/api/events"))
        page = await asyncio.to_thread(_get, f"{base}/")
        refused = [await asyncio.to_thread(_post, f"{base}{path}") for path in (
            "/api/board", f"/api/alerts/{board['alerts'][0]['key']}/ack", "/api/language")]
    assert [(a["compound"], a["id"], a["state"], a["ackable"]) for a in board["alerts"]] == [
        (f"{city.district}/c7", "al-7", "firing", False)]
    assert [(e["compound"], e["id"], e["cls"]) for e in events["events"]] == [
        (f"{city.district}/c8", event.id, "alarm")]
    assert events["counts"] == {f"{city.district}/c8": 1}
    assert board["events"] == events["events"]
    assert {c["compound"]: (c["active"], c["events"]) for c in board["compounds"]} == {
        f"{city.district}/c7": (1, 0), f"{city.district}/c8": (0, 1)}
    # the console's own page, in multi-compound mode
    assert 'data-mode="city"' in page
    assert "/static/console.js" in page
    assert refused == [405, 404, 404]


async def test_what_cannot_be_read_is_counted_and_not_delivered_again(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url, consumer={"ack_wait_s": 1.0})
    async with running_hub(config) as hub, city_client(nats_cluster) as js:
        await js.publish(f"sc.{city.district}.c1.elder_button.e1.press", b"{not json",
                         headers={"Nats-Msg-Id": "bad-1"})
        await js.publish(f"sc.{city.district}.c1.toaster.e1.press", b'{"ts": 1}',
                         headers={"Nats-Msg-Id": "bad-2"})
        good = _event(1)
        await publish(js, city.district, "c1", good)
        await eventually(lambda: hub.counters.get("hub_records", kind="deviceevent") == 1,
                         what="the good record handled")
        await asyncio.sleep(config.consumer.ack_wait_s + 0.5)  # past a redelivery
        info = await js.consumer_info(city.stream, "hub")
        stored = await _samples(victoria.url, city, "c1")
    assert hub.counters.get("hub_rejected", reason="payload") == 1
    assert hub.counters.get("hub_rejected", reason="kind") == 1
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert stored == {("e1", good.ts): 1}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"),
                                    timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code



async def test_the_hub_commands_set_up_the_cluster_and_name_a_missing_secret(
        tmp_path: Path, nats_cluster: NatsCluster, city: CityNames,
        victoria: VictoriaMetrics) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(toml(hub_raw(nats_cluster, city, victoria.url)))
    done = await asyncio.to_thread(_scgw, "hub", "init", "--config", str(file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"stream {city.stream} created")
    file.write_text(toml(hub_raw(nats_cluster, city, victoria.url,
                                 nats={"user": "hub", "password_env": "CITY_UNSET_PASSWORD"})))
    refused = await asyncio.to_thread(_scgw, "hub", "run", "--config", str(file))
    assert refused.returncode == 2
    assert "nats.password_env: the environment variable CITY_UNSET_PASSWORD is not set" in (
        refused.stderr)


def _scgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.ops.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={k: v for k, v in os.environ.items()
                               if k != "CITY_UNSET_PASSWORD"})


async def test_the_hub_tells_what_waits_in_the_stream(
        nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics) -> None:
    config = hub_config(nats_cluster, city, victoria.url, consumer={"batch": 5})
    await provision(config, {})
    async with city_client(nats_cluster) as js:
        for n in range(30):  # before any hub runs: a backlog
            await publish(js, city.district, "c1", _event(n))
    async with running_hub(config) as hub:
        await eventually(lambda: hub.backlog.get("pending", 0) > 0,
                         what="the backlog looked at")
        seen = dict(hub.backlog)
        status = json.loads(await asyncio.to_thread(
            _get, f"http://127.0.0.1:{config.board.port}/api/status"))
    assert 0 < seen["pending"] < 30
    assert set(status["backlog"]) == {"pending", "unacknowledged", "redelivered"}
