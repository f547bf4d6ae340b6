"""City scale: what one NATS node and one hub process carry, what a compound sends, and the
full-size burst through a lost stream leader and a killed hub.

A private three-node JetStream cluster on loopback ports, the suite's Mosquitto and
VictoriaMetrics. Figures:

- node: parcels/s through one NATS node into the replicas-3 stream, by the gateway's own
  `jetstream` transport (a device's parcels one after another, devices side by side); one
  compound alone, and `COMPOUNDS` compounds at once (each its own connection to that node);
- hub: records/s one hub process takes from the stream into the central store (fetch,
  points through the store writer, acknowledgements), and two processes sharing the work,
  with each process's CPU-seconds per 10,000 records;
- compound: records/s the simulated compound (simulators/site.py) journals and sends to the
  city under deploy/city/city_hub.yaml, while its scenarios are played;
- burst: three gateways x `burst` alarm-class events; the stream leader SIGKILLed after a
  third, a hub process after two thirds, both started again: lost, duplicates (per series
  and timestamp), per-device order, and the time until every alarm was stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.city_rig import HubProcess, accepted_alarms, judge_compound, stream_records
from bench.gateway_bench import Servers, _start
from bench.procstat import sample
from bench.report import Row
from gateway.city_connection import connect
from gateway.config_file import load_config, parse_config
from gateway.core.city import NatsAccess
from gateway.core.clock import SystemClock
from gateway.core.model import DeviceEvent
from gateway.core.upstream_config import JetStreamUpstream
from gateway.ops.private_servers import NatsCluster, free_port
from gateway.supervisor import Gateway
from gateway.upstreams.jetstream import JetStreamTransport
from gateway.upstreams.transport import Parcel, Setting
from hub.config import parse_hub_config
from hub.provision import provision
from simulators.elder_button import SimulatedElder

Progress = Callable[[str], None]

STREAM = "SC"
DISTRICT = "bench"
COMPOUNDS = 8  # publishing at once through one node
DEVICES = 20  # per publishing compound
BATCH = 100  # parcels per delivery: the upstream sink's default batch
BUTTONS = 10  # per gateway of the burst
REPO = Path(__file__).resolve().parent.parent
ALL_ALARMS = """
rules:
  - id: alarms
    select: {records: [event], type: [press]}
    fields: [ts, rec, kind, type, cls, device, building, floor]
    place: floor
    basis: vital_interest
    reference: benchmark
  - id: alerts
    select: {records: [alert]}
    fields: [ts, rec, kind, rule, state, severity, since, device, building, floor]
    place: floor
    basis: vital_interest
    reference: benchmark
"""


def _hub_raw(cluster: NatsCluster, store: str, durable: str, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "nats": {"servers": cluster.urls, "reconnect_wait_s": 0.1},
        "stream": {"name": STREAM, "subjects": ["sc.>"], "max_gb": 1.0},
        "consumer": {"durable": durable, "ack_wait_s": 5.0, "fetch_wait_s": 0.5},
        "alerts": {"bucket": "sc_alerts"},
        "store": {"url": store, "retry_min_s": 0.05, "retry_max_s": 0.5},
        "board": {"port": free_port()},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


async def run(srv: Servers, workdir: Path, progress: Progress, *, burst: int = 1000,
              parcels: int = 20_000, seconds: float = 60.0) -> list[Row]:
    cluster = NatsCluster(workdir / "nats")
    await _start(cluster.start)
    try:
        config = parse_hub_config(_hub_raw(cluster, srv.store.url, "hub"), Path("hub.toml"),
                                  {})
        await provision(config, {})
        rows = await _node(cluster, progress, parcels)
        rows += await _hub(cluster, srv, workdir, progress)
        rows += await _burst(cluster, srv, workdir, progress, burst)
        rows += await _compound(cluster, srv, workdir, progress, seconds)
        return rows
    finally:
        await asyncio.to_thread(cluster.stop)


# -- one node --------------------------------------------------------------------------


def _parcels(compound: int, count: int) -> list[Parcel]:
    ts = time.time_ns() // 1_000_000
    out = []
    for n in range(count):
        device = f"e{n % DEVICES}"
        record_id = f"{compound:03d}-{n:07d}"
        payload = (f'{{"id":"{record_id}","ts":{ts + n},"rec":"event","kind":"elder_button",'
                   f'"type":"press","cls":"alarm","building":"3","floor":2}}').encode()
        out.append(Parcel(record_id=record_id, seq=n + 1, device=device, kind="elder_button",
                          type="press", payload=payload, rule="alarms"))
    return out


async def _publish(node_url: str, compound: int, parcels: list[Parcel]) -> None:
    upstream = JetStreamUpstream(kind="jetstream", name="city", policy=Path("none.yaml"),
                                 district=DISTRICT, stream=STREAM, timeout_s=30.0,
                                 nats=NatsAccess(servers=[node_url]))
    transport = JetStreamTransport(upstream, Setting(f"c{compound:03d}", {}, SystemClock()))
    await transport.open()
    try:
        for start in range(0, len(parcels), BATCH):
            await transport.deliver(parcels[start:start + BATCH])
    finally:
        await transport.close()


async def _node(cluster: NatsCluster, progress: Progress, count: int) -> list[Row]:
    node = cluster.nodes[0]
    rows = []
    for compounds in (1, COMPOUNDS):
        each = count // compounds
        progress(f"city: {compounds} compound(s) x {each:,} parcels through node "
                 f"{node.server_name} into a replicas-3 stream")
        server_cpu = [await asyncio.to_thread(_cpu, n) for n in cluster.nodes]
        started = time.monotonic()
        await asyncio.gather(*(_publish(node.url, 1000 * compounds + c, _parcels(c, each))
                               for c in range(compounds)))
        elapsed = time.monotonic() - started
        cpu = [await asyncio.to_thread(_cpu, n) - before
               for n, before in zip(cluster.nodes, server_cpu, strict=True)]
        rate = compounds * each / elapsed
        rows.append(Row(
            "city", f"one NATS node, {compounds} compound(s) publishing",
            f"{rate:,.0f} parcels/s",
            f"{compounds * each:,} parcels in {elapsed:.1f} s, replicas 3, {DEVICES} devices "
            f"per compound; node CPU {cpu[0] / elapsed * 100:.0f} % (the entry node), "
            f"{max(cpu[1:]) / elapsed * 100:.0f} % (a replica)",
            {"parcels_per_s": round(rate), "compounds": compounds, "parcels": compounds * each,
             "seconds": round(elapsed, 2),
             "node_cpu_s_per_10k": round(cpu[0] / (compounds * each) * 10_000, 2),
             "replica_cpu_s_per_10k": round(max(cpu[1:]) / (compounds * each) * 10_000, 2)}))
    return rows


def _cpu(node: Any) -> float:
    return _process_cpu(node.pid)


def _process_cpu(pid: int) -> float:
    return sample(pid).cpu_s


# -- hub processes ------------------------------------------------------------------------


async def _hub(cluster: NatsCluster, srv: Servers, workdir: Path, progress: Progress
               ) -> list[Row]:
    """The stream holds what the node figures published: a fresh durable consumer per case
    reads all of it."""
    nc = await connect(NatsAccess(servers=cluster.urls), {}, "bench-city")
    try:
        state = (await nc.jetstream().stream_info(STREAM)).state
    finally:
        await nc.close()
    total = state.messages
    rows = [Row("city", "stream bytes per record", f"{state.bytes / total:.0f} B",
                f"{total:,} records, {state.bytes / 2**20:.1f} MiB on each of 3 nodes",
                {"bytes_per_record": round(state.bytes / total), "records": total})]
    for processes in (1, 2):
        durable = f"hub-bench-{processes}"
        raws = [_hub_raw(cluster, srv.store.url, durable) for _ in range(processes)]
        await provision(parse_hub_config(raws[0], Path("hub.toml"), {}), {})
        progress(f"city: {processes} hub process(es) taking {total:,} records into the store")
        hubs = [HubProcess(workdir / "hubs", raw, f"{durable}-{n}")
                for n, raw in enumerate(raws)]
        for hub in hubs:
            hub.start()
        try:
            await asyncio.gather(*(hub.up() for hub in hubs))
            cpu0 = [await asyncio.to_thread(_process_cpu, hub.pid) for hub in hubs]
            started = time.monotonic()
            done = 0
            while done < total:
                statuses = [await asyncio.to_thread(hub.status) for hub in hubs]
                done = sum((s or {}).get("hub_records{kind=deviceevent}", 0) for s in statuses)
                if time.monotonic() - started > 600:
                    break
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
            cpu = [await asyncio.to_thread(_process_cpu, hub.pid) - c
                   for hub, c in zip(hubs, cpu0, strict=True)]
        finally:
            for hub in hubs:
                hub.stop()
        rate = done / elapsed
        rows.append(Row(
            "city", f"{processes} hub process(es)", f"{rate:,.0f} records/s",
            f"{done:,} records into the store in {elapsed:.1f} s; "
            f"{sum(cpu) / max(done, 1) * 10_000:.2f} CPU-s per 10,000",
            {"records_per_s": round(rate), "processes": processes, "records": done,
             "cpu_s_per_10k": round(sum(cpu) / max(done, 1) * 10_000, 2)}))
    return rows


# -- the full-size burst ------------------------------------------------------------------


def _gateway(workdir: Path, site: str, cluster: NatsCluster, srv: Servers) -> Gateway:
    where = workdir / f"gateway-{site}"
    where.mkdir(parents=True, exist_ok=True)
    policy = where / "city.yaml"
    policy.write_text(ALL_ALARMS)
    raw: dict[str, Any] = {
        "site": site, "gpio_factory": "mock",
        "broker": {"port": srv.mosquitto.port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "store": {"url": srv.store.url, "flush_interval_s": 0.2, "retry_min_s": 0.1,
                  "retry_max_s": 0.5},
        "journal": {"path": str(where / "journal.db")},
        "devices": [{"id": f"e{n}", "kind": "elder_button", "transport": "gpio",
                     "location": {"building": "3", "unit": "1", "floor": 1 + n % 6},
                     "gpio": {"pin": n + 2, "debounce_ms": 0, "long_press_s": 2.0}}
                    for n in range(BUTTONS)],
        "upstreams": [{"name": "city", "kind": "jetstream", "policy": str(policy),
                       "district": DISTRICT, "stream": STREAM,
                       "nats": {"servers": cluster.urls, "reconnect_wait_s": 0.1},
                       "retry_min_s": 0.05, "retry_max_s": 0.5, "timeout_s": 2.0}],
    }
    return Gateway(parse_config(raw, where / "gateway.toml", os.environ))


async def _press(gateway: Gateway, rounds: range) -> None:
    elders = [SimulatedElder(gateway.pin_factory, n + 2, gateway.clock)
              for n in range(BUTTONS)]
    for _ in rounds:
        for elder in elders:
            elder.down()
            elder.up()
        await asyncio.sleep(0.005)


async def _burst(cluster: NatsCluster, srv: Servers, workdir: Path, progress: Progress,
                 burst: int) -> list[Row]:
    presses = burst // BUTTONS
    sites = ("b1", "b2", "b3")
    # every event of the burst stays on each hub's board (and what the stream had before)
    raws = [_hub_raw(cluster, srv.store.url, "hub-burst", stream={"subjects": ["sc.>"]},
                     board={"events_kept": 10 * burst + 10_000}) for _ in range(2)]
    await provision(parse_hub_config(raws[0], Path("hub.toml"), {}), {})
    hubs = [HubProcess(workdir / "hubs", raw, f"hub-burst-{n}") for n, raw in enumerate(raws)]
    for hub in hubs:
        hub.start()
    progress(f"city: 3 gateways x {presses * BUTTONS:,} alarms; the stream leader and a hub "
             "killed mid-burst")
    try:
        await asyncio.gather(*(hub.up() for hub in hubs))
        gateways = [_gateway(workdir, site, cluster, srv) for site in sites]
        tasks = [asyncio.create_task(g.run(), name=f"bench.city.{g.config.site}")
                 for g in gateways]
        try:
            await asyncio.gather(*(g.ready.wait() for g in gateways))
            third = presses // 3
            started = time.monotonic()
            await asyncio.gather(*(_press(g, range(third)) for g in gateways))
            leader = await asyncio.to_thread(cluster.stream_leader, STREAM) or "n1"
            await asyncio.to_thread(cluster.node(leader).kill)
            await asyncio.gather(*(_press(g, range(third, 2 * third)) for g in gateways))
            hubs[0].kill()
            await asyncio.gather(*(_press(g, range(2 * third, presses)) for g in gateways))
            pressed = time.monotonic() - started
            await asyncio.to_thread(cluster.node(leader).start)
            hubs[0].start()
            while not all(g.counters.get("events_accepted", cls="alarm") >= presses * BUTTONS
                          and g.upstreams[0].cursor >= g.journal.last_seq for g in gateways):
                if time.monotonic() - started > 300:
                    break
                await asyncio.sleep(0.1)
            delivered = time.monotonic() - started
            accepted = {g.config.site: await accepted_alarms(g.journal) for g in gateways}
        finally:
            for g in gateways:
                g.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
        nc = await connect(NatsAccess(servers=cluster.urls), {}, "bench-city-oracle")
        try:
            streamed = await stream_records(nc.jetstream(), STREAM, DISTRICT)
        finally:
            await nc.close()
        while True:
            verdicts = [await judge_compound(accepted[s], streamed, srv.store.url, DISTRICT, s)
                        for s in sites]
            if sum(v.lost_store for v in verdicts) == 0 or time.monotonic() - started > 300:
                break
            await asyncio.sleep(0.5)
        stored = time.monotonic() - started
        while True:  # the surviving hub's board: every alarm once, with its compound
            board = await asyncio.to_thread(hubs[1].board, "/api/events")
            missing, doubled = _on_board(board["events"], accepted)
            if not missing or time.monotonic() - started > 300:
                break
            await asyncio.sleep(0.5)
        # what a process took and did not acknowledge, given again (to either process)
        shares = [await asyncio.to_thread(hub.status) for hub in hubs]
        redelivered = sum((share or {}).get("hub_redelivered", 0) for share in shares)
    finally:
        for hub in hubs:
            hub.stop()
    total = sum(v.accepted for v in verdicts)
    figures = {"accepted": total, "lost": sum(v.lost_store for v in verdicts),
               "store_duplicates": sum(v.store_duplicates for v in verdicts),
               "order_violations": sum(v.order_violations for v in verdicts),
               "stream_copies": sum(v.stream_same_id for v in verdicts),
               "board_missing": missing, "board_duplicates": doubled,
               "redelivered": redelivered,
               "burst_s": round(pressed, 2), "delivered_s": round(delivered, 2),
               "stored_s": round(stored, 2)}
    return [Row("city", "3 gateways x burst, leader and a hub killed",
                f"lost {figures['lost']}, duplicates {figures['store_duplicates']}",
                f"{total:,} alarms accepted; order violations {figures['order_violations']}, "
                f"stream copies {figures['stream_copies']}; on the surviving hub's board: "
                f"missing {missing}, duplicates {doubled}; {redelivered} redelivered; "
                f"pressed in {pressed:.1f} s, all in the stream after {delivered:.1f} s, all "
                f"stored after {stored:.1f} s", figures)]


def _on_board(events: list[dict[str, Any]], accepted: dict[str, list[DeviceEvent]]
              ) -> tuple[int, int]:
    """Alarms missing from a board's events, and copies beyond the first."""
    seen = Counter((e["compound"], e["id"]) for e in events)
    wanted = {(f"{DISTRICT}/{site}", e.id) for site, alarms in accepted.items()
              for e in alarms}
    return (len(wanted - seen.keys()),
            sum(n - 1 for key, n in seen.items() if key in wanted))


# -- the simulated compound ---------------------------------------------------------------


async def _compound(cluster: NatsCluster, srv: Servers, workdir: Path, progress: Progress,
                    seconds: float) -> list[Row]:
    from simulators.scenarios import SCENARIOS
    from simulators.site import KEY_ENV, SimulatedSite

    progress(f"city: the simulated compound for {seconds:g} s, its scenarios played")
    # pymodbus logs every frame at debug level unless told otherwise (as `scgw run` does)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    os.environ.setdefault(KEY_ENV, "bench-compound-pseudonym-key")
    os.environ.setdefault("SCGW_CITY_KEY", "bench-city-pseudonym-key-0123456789")
    async with SimulatedSite(workdir / "site") as site:
        file = workdir / "site" / "gateway.toml"
        text = site.config(srv.mosquitto.port, srv.store.url)
        text += f"""
[[upstreams]]
name = "city"
kind = "jetstream"
policy = "{REPO / 'deploy' / 'city' / 'city_hub.yaml'}"
pseudonym_key_env = "SCGW_CITY_KEY"
district = "{DISTRICT}"
stream = "{STREAM}"
nats = {{ servers = {[str(u) for u in cluster.urls]!r} }}
""".replace("'", '"')
        file.write_text(text)
        config = load_config(file)
        gateway = Gateway(config)
        task = asyncio.create_task(gateway.run(), name="bench.city.compound")
        try:
            await gateway.ready.wait()
            devices = await site.attach(config, gateway.pin_factory, gateway.clock)
            first = gateway.journal.last_seq
            sent0 = gateway.upstreams[0].delivered
            started = time.monotonic()

            async def pause(s: float) -> None:
                await asyncio.sleep(min(s * 0.3, 3.0))

            for scenario in SCENARIOS.values():
                await scenario.run(devices, pause, lambda _text: None)
            rest = seconds - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)
            elapsed = time.monotonic() - started
            journalled = gateway.journal.last_seq - first
            sent = gateway.upstreams[0].delivered - sent0
            devices_n = len(config.devices)
        finally:
            gateway.stop()
            await asyncio.gather(task, return_exceptions=True)
    return [Row("city", f"simulated compound ({devices_n} devices, every scenario once)",
                f"{sent / elapsed:.2f} records/s to the city",
                f"{journalled / elapsed:.2f} journal records/s over {elapsed:.0f} s; "
                f"{sent} of {journalled} sent under deploy/city/city_hub.yaml",
                {"city_records_per_s": round(sent / elapsed, 3),
                 "journal_records_per_s": round(journalled / elapsed, 3),
                 "seconds": round(elapsed, 1), "devices": devices_n})]
