"""A compound cut off from the city, then back: its local alarms go out at once all along,
and its backlog reaches the central store with nothing lost and no point twice.

Ten minutes are played short: the stream's duplicate window is 1 s and the line is cut for
longer than that, so a parcel whose acknowledgement the cut swallowed is published again
after the window (as after ten minutes with the default window), and the upstream's backoff
reaches its cap while the line is down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec

from bench.city_rig import accepted_alarms, judge_compound, stream_records
from gateway.core.model import DeviceEvent
from gateway.ops.private_servers import Mosquitto, NatsCluster, VictoriaMetrics
from gateway.supervisor import Gateway
from gateway.upstreams.sink import UpstreamState
from simulators.elder_button import SimulatedElder
from tests.city.relay import Relay
from tests.city.rig import CityNames, city_client, hub_config, running_hub
from tests.city.test_city_end_to_end import BUTTONS, compound_config
from tests.helpers import Watcher, eventually, running

WINDOW_S = 1.0
BEFORE, DURING = 8, 24  # presses while connected, and while cut off


async def _pressed(gateway: Gateway, watcher: Watcher, n: int) -> float:
    """Press button n % BUTTONS; seconds until its event was on the compound's broker."""
    device = f"e{n % BUTTONS}"
    elder = SimulatedElder(gateway.pin_factory, n % BUTTONS + 2, gateway.clock)
    started = time.monotonic()
    elder.down()
    elder.up()
    await watcher.next(lambda s: s.topic.endswith(f"/{device}/event") and msgspec.json.decode(
        s.payload, type=DeviceEvent).type == "press")
    return time.monotonic() - started


async def test_a_compound_cut_off_catches_up_and_its_local_alarms_are_not_delayed(
        tmp_path: Path, nats_cluster: NatsCluster, city: CityNames, victoria: VictoriaMetrics,
        mosquitto: Mosquitto) -> None:
    config = hub_config(nats_cluster, city, victoria.url,
                        stream={"duplicate_window_s": WINDOW_S})
    async with running_hub(config), Relay(nats_cluster.nodes[0].port) as line, running(
            Gateway(compound_config(tmp_path, "c9", nats_cluster, city, mosquitto.port,
                                    victoria.url, servers=[line.url]))
    ) as gateway, Watcher(mosquitto.port, "sc/c9/+/+/event", "duty-office") as office:
        upstream = gateway.upstreams[0]
        before = [await _pressed(gateway, office, n) for n in range(BEFORE)]
        await eventually(lambda: upstream.cursor >= gateway.journal.last_seq,
                         what="delivered before the cut")
        line.cut()
        during = [await _pressed(gateway, office, n) for n in range(BEFORE, BEFORE + DURING)]
        await eventually(lambda: upstream.state is UpstreamState.DOWN, what="upstream down")
        await asyncio.sleep(WINDOW_S + 0.5)  # the cut outlasts the duplicate window
        during += [await _pressed(gateway, office, BEFORE + DURING)]
        backlog = gateway.journal.last_seq - upstream.cursor
        retries = sum(v for k, v in gateway.counters.snapshot().items()
                      if k.startswith("upstream_retries"))
        line.mend()
        await eventually(lambda: upstream.cursor >= gateway.journal.last_seq, timeout=20,
                         what="the backlog delivered")
        accepted = await accepted_alarms(gateway.journal)
        async with city_client(nats_cluster) as js:
            streamed = await stream_records(js, city.stream, city.district)

            async def stored() -> bool:
                verdict = await judge_compound(accepted, streamed, victoria.url, city.district,
                                               "c9")
                return verdict.lost_store == 0

            await eventually(stored, timeout=15, interval=0.5, what="the backlog stored")
            verdict = await judge_compound(accepted, streamed, victoria.url, city.district, "c9")
    verdict.extra.update({"backlog": backlog, "retries": retries,
                          "local_ms_max_before": round(max(before) * 1000),
                          "local_ms_max_during": round(max(during) * 1000)})
    verdict.print("compound cut off")
    assert verdict.accepted == BEFORE + DURING + 1
    assert backlog >= DURING
    assert (verdict.lost_store, verdict.store_duplicates, verdict.order_violations) == (0, 0, 0)
    # every press reached the compound's own broker at once while the city was away
    assert max(during) < 0.5, (before, during)

