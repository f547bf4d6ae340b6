"""Three compounds' gateways feed the city's three-node JetStream cluster through their
`jetstream` upstreams; two hub processes share the stream into the central store. Mid-burst
the stream's leader is SIGKILLed, then one hub process while it holds a batch it took and
did not acknowledge (its line to the store cut); both come back. What the killed process
held went to the other one; every alarm is in the central store once, in each device's
order in the stream, and on both hubs' city boards with its compound, as every alert.

The full size (1,000 alarms from each of three gateways) runs in `python -m bench --only
city`; here a burst of 3 x 60 keeps the suite quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import nats.errors
from nats.js.client import JetStreamContext

from bench.city_rig import accepted_alarms, judge_compound, stream_records
from gateway.ops.private_servers import Mosquitto, NatsCluster, VictoriaMetrics
from gateway.supervisor import Gateway
from hub.provision import provision
from simulators.elder_button import SimulatedElder
from tests.city.relay import Relay
from tests.city.rig import CityNames, HubProcess, city_client, hub_config, hub_raw
from tests.helpers import elder_gpio, eventually, make_config, running

FETCH_WAIT_S = 0.5  # the hubs' consumer.fetch_wait_s (tests/city/rig.py)
BUTTONS = 4
PRESSES = 15  # per button: 60 alarms per compound
SITES = ("c1", "c2", "c3")
POLICY = """
rules:
  - id: alarms
    select: {records: [event], type: [press]}
    fields: [ts, rec, kind, type, cls, device, building, floor]
    place: floor
    basis: vital_interest
    reference: test
  - id: alerts
    select: {records: [alert]}
    fields: [ts, rec, kind, rule, state, severity, since, device, building, floor]
    place: floor
    basis: vital_interest
    reference: test
"""


def compound_config(tmp_path: Path, site: str, cluster: NatsCluster, names: CityNames,
                    broker: int, store: str, servers: list[str] | None = None,
                    **upstream: Any) -> Any:
    policy = tmp_path / "city.yaml"
    policy.write_text(POLICY)
    workdir = tmp_path / site
    workdir.mkdir(exist_ok=True)
    return make_config(
        workdir, site=site, broker_port=broker, store_url=store,
        devices=[elder_gpio(f"e{n}", pin=n + 2) for n in range(BUTTONS)],
        upstreams=[{"name": "city", "kind": "jetstream", "policy": str(policy),
                    "district": names.district, "stream": names.stream,
                    "nats": {"servers": servers or cluster.urls, "reconnect_wait_s": 0.1},
                    "retry_min_s": 0.05, "retry_max_s": 0.5, "timeout_s": 2.0,
                    **upstream}])


async def press(gateway: Gateway, rounds: range, pause_s: float = 0.01) -> None:
    elders = [SimulatedElder(gateway.pin_factory, n + 2, gateway.clock)
              for n in range(BUTTONS)]
    for _ in rounds:
        for elder in elders:
            elder.down()
            elder.up()
        await asyncio.sleep(pause_s)


async def holding(hub: HubProcess) -> set[int]:
    """The stream sequences `hub` took and holds unacknowledged (its store is cut off)."""
    held: set[int] = set()

    async def some() -> bool:
        held.update((await asyncio.to_thread(hub.state) or {}).get("in_hand", ()))
        return bool(held)

    await eventually(some, timeout=20, interval=0.1, what=f"{hub.name} holding a batch")
    return held


async def all_events(hub: HubProcess, wanted: int) -> bool:
    events = await asyncio.to_thread(hub.board, "/api/events")
    counts: dict[str, int] = events["counts"]
    return sum(counts.values()) >= wanted


async def settled_past(js: JetStreamContext, names: CityNames, durable: str,
                       held: set[int]) -> bool:
    """Whether every sequence of `held` is acknowledged (the consumer's acknowledgement floor
    is past them). With the process that held them killed, only the other one can have.
    JetStream's delivery count is not the oracle: nats-server before 2.11 can lose it when
    the consumer's new leader was a lagging stream follower (nats-io/nats-server#6698), and
    the killed leader makes that happen here."""
    try:
        info = await js.consumer_info(names.stream, durable)
    except nats.errors.Error:  # the cluster still electing: not yet
        return False
    return (info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= max(held)
            and info.num_ack_pending == 0)


async def test_a_burst_from_three_compounds_survives_a_lost_leader_and_a_killed_hub(
        tmp_path: Path, nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics,
        mosquitto: Mosquitto) -> None:
    config = hub_config(nats_cluster, city, victoria.url)
    await provision(config, {})
    # hub-a's line to the central store: cut, it holds the batch it takes
    async with Relay(int(victoria.url.rsplit(":", 1)[1])) as store_line:
        hubs = [HubProcess(tmp_path / "hubs", hub_raw(nats_cluster, city, url), name)
                for name, url in (("hub-a", f"http://127.0.0.1:{store_line.port}"),
                                  ("hub-b", victoria.url))]
        for hub in hubs:
            hub.start()
        try:
            await asyncio.gather(*(hub.up() for hub in hubs))
            gateways = [Gateway(compound_config(tmp_path, site, nats_cluster, city,
                                                mosquitto.port, victoria.url))
                        for site in SITES]
            async with running(gateways[0]), running(gateways[1]), running(gateways[2]):
                third = PRESSES // 3
                await asyncio.gather(*(press(g, range(third)) for g in gateways))
                leader = await asyncio.to_thread(nats_cluster.stream_leader, city.stream)
                assert leader is not None
                await asyncio.to_thread(nats_cluster.node(leader).kill)
                # the next batches go to hub-a, which holds them (its store line is cut):
                # hub-b frozen meanwhile, until its waiting fetch has expired
                store_line.cut()
                took_before = (await asyncio.to_thread(hubs[1].status) or {})
                hubs[1].pause()
                await asyncio.sleep(FETCH_WAIT_S + 0.2)
                await asyncio.gather(*(press(g, range(third)) for g in gateways))
                held = await holding(hubs[0])
                hubs[0].kill()
                hubs[1].resume()
                await asyncio.gather(*(press(g, range(2 * third, PRESSES)) for g in gateways))
                # taken and not acknowledged by the killed process: the other one took,
                # stored and acknowledged them before the killed one comes back
                async with city_client(nats_cluster) as js:
                    await eventually(
                        lambda: settled_past(js, city, config.consumer.durable, held),
                        timeout=20, interval=0.2, what="hub-a's batch taken by hub-b")
                took_after = (await asyncio.to_thread(hubs[1].status) or {})
                await asyncio.to_thread(nats_cluster.node(leader).start)
                store_line.mend()
                hubs[0].start()
                for gateway in gateways:
                    def delivered(g: Gateway = gateway) -> bool:
                        return (g.counters.get("events_accepted", cls="alarm")
                                == BUTTONS * PRESSES
                                and g.upstreams[0].cursor >= g.journal.last_seq)

                    await eventually(delivered, timeout=30,
                                     what=f"{gateway.config.site} delivered to the city")
                accepted = {g.config.site: await accepted_alarms(g.journal) for g in gateways}
                local_alerts = {g.config.site: {a.id for a in g.rules.active()}
                                for g in gateways}
            await hubs[0].up()
            await asyncio.to_thread(nats_cluster.wait_healthy)
            async with city_client(nats_cluster) as js:
                streamed = await stream_records(js, city.stream, city.district)

                async def stored() -> bool:
                    for site in SITES:
                        verdict = await judge_compound(accepted[site], streamed, victoria.url,
                                                       city.district, site)
                        if verdict.lost_store:
                            return False
                    return True

                await eventually(stored, timeout=20, interval=0.5, what="every alarm stored")
                verdicts = {site: await judge_compound(accepted[site], streamed, victoria.url,
                                                       city.district, site) for site in SITES}

                async def settled() -> bool:
                    info = await js.consumer_info(city.stream, config.consumer.durable)
                    return (info.num_pending, info.num_ack_pending) == (0, 0)

                await eventually(settled, timeout=10, what="nothing waits unacknowledged")
                wanted = sum(len(ids) for ids in accepted.values())
                # the survivor's board, and the one started again: a feed whose consumer
                # was on the lost node finds it gone, or one left silent on another node
                # finds it gives nothing of what the stream holds, after LOOK_EVERY empty
                # fetches (5 s) and makes it again, with up to 5 s between tries while the
                # cluster recovers
                for hub in hubs:
                    def all_on_board(h: HubProcess = hub) -> Awaitable[bool]:
                        return all_events(h, wanted)

                    try:
                        await eventually(all_on_board, timeout=30,
                                         what=f"every event on {hub.name}'s board")
                    except AssertionError as exc:
                        said = hub.log.read_text(errors="replace").splitlines()[-20:]
                        raise AssertionError(f"{exc}; {hub.name} said last:\n"
                                             + "\n".join(said)) from None
                events = [await asyncio.to_thread(hub.board, "/api/events") for hub in hubs]
                # the alerts' state is written to the bucket by whichever hub took the
                # transition, again after a timeout of the cluster: the board shows it once
                # that write is through. A write caught in the bucket's leader election
                # waits for JetStream's API timeout (5 s), then up to 5 s of the hub's
                # backoff, and may go round twice: the same 30 s as the waits above
                board: dict[str, Any] = {}

                def on_hub_b() -> dict[str, set[str]]:
                    return {site: {a["id"] for a in board.get("alerts", ())
                                   if a["site"] == site} for site in SITES}

                async def board_settled() -> bool:
                    nonlocal board
                    board = await asyncio.to_thread(hubs[1].board)
                    return on_hub_b() == local_alerts

                try:
                    await eventually(board_settled, timeout=30, interval=0.2,
                                     what="every open alert on hub-b's board")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: hub-b shows {on_hub_b()}, the compounds "
                                         f"have {local_alerts}") from None
                shares = [await asyncio.to_thread(hub.status) for hub in hubs]
        finally:
            for hub in hubs:
                hub.stop()
    for site, verdict in verdicts.items():
        verdict.extra["leader_killed"] = int(leader[1:])
        verdict.extra["hub_a_held_redelivered"] = len(held)
        verdict.print(f"city burst, compound {site}")
        assert verdict.accepted == BUTTONS * PRESSES
        assert (verdict.lost_store, verdict.store_duplicates, verdict.order_violations,
                verdict.stream_same_id) == (0, 0, 0, 0)
    on_board = {site: {a["id"] for a in board["alerts"] if a["site"] == site}
                for site in SITES}
    assert on_board == local_alerts
    assert all(len(alerts) == BUTTONS for alerts in on_board.values())
    # every alarm event on each hub's board, once, with its compound
    for seen in events:
        for site in SITES:
            mine = [(e["id"], e["device"], e["cls"]) for e in seen["events"]
                    if e["compound"] == f"{city.district}/{site}"]
            assert sorted(mine) == sorted((e.id, e.device, "alarm") for e in accepted[site])
            assert seen["counts"][f"{city.district}/{site}"] == BUTTONS * PRESSES
    # the surviving hub took its share before the other was killed, and the rest after
    assert (shares[1] or {}).get("hub_records{kind=deviceevent}", 0) > 0
    def taken(counters: dict[str, int]) -> int:
        return sum(n for key, n in counters.items() if key.startswith("hub_records{"))

    assert taken(took_after) - taken(took_before) >= len(held)
    assert len(held) > 0
