"""A storm on the HTTP push port: temperature gates pushing passages (a tenth of them
fevers) faster than the gateway takes them, each gate keeping what was not taken and
pushing it again, while 1,000 connections from the LAN are held open against the port
(idle, or a request head that never ends) and a door controller is forced open every 2 s.
The gates and the flood run in a process of their own (simulators/push_fleet.py), as
devices on the LAN do: the gateway's event loop does only the gateway's work.

Every forced door alerts within 1 s; the process stays under `limits.memory_mb` (set
256 MiB above what the test process held before the gateway started); every
passage the gateway answered 2xx for is in the store exactly once, and each push it refused
(503, 429) is counted alike by the gates and by the gateway. The figures of a longer storm,
with the gateway in a process of its own, are benchmarks (bench/push_storm.py).
"""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

from bench.storm import resident_bytes, sampling
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.supervisor import Gateway
from tests.faults.push_storm import (
    FleetProcess,
    alarms_every,
    doors,
    p99,
    push_config,
    receiver_of,
    settled_account,
)
from tests.helpers import Watcher, eventually, running, unique_site

GATES = 100
RATE_HZ = 30.0  # per gate, under limits.device_rate_hz (here 40/s): 3,000 passages/s in all
SECONDS = 8.0
ALARMS = 4  # one every 2 s
CONNECTIONS = 1_000
HEADROOM_MB = 256  # the ceiling above what this process held before the gateway started:
# the gateway runs inside the test process, which in a long suite holds far more already


async def test_a_push_storm_through_a_connection_flood_delays_no_alarm_and_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("push-storm")
    port = free_port()
    ceiling_mb = math.ceil(resident_bytes(os.getpid()) / 2**20) + HEADROOM_MB
    config = push_config(tmp_path, site, mosquitto.port, victoria.url, port, gates=GATES,
                         doors=ALARMS, http={"header_timeout_s": 2.0},
                         limits={"memory_mb": ceiling_mb, "device_rate_hz": 40.0})
    assert config.http is not None
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/access.forced_open/#", "duty") as duty, \
            doors(port, ALARMS) as door_pushers, sampling(os.getpid()) as resident, \
            FleetProcess(port, tmp_path / "ledger.json", gates=GATES, rate=RATE_HZ,
                         seconds=SECONDS, flood=CONNECTIONS, retry_scale=0.2) as fleet:
        receiver = receiver_of(gateway)
        await asyncio.wait_for(receiver.ready.wait(), 10)
        connections = receiver.connections
        assert connections is not None
        await eventually(lambda: gateway.connected, what="connected")
        await fleet.go()
        started = await fleet.read(30)
        alarms = await alarms_every(door_pushers, duty, every_s=2.0)
        produced = await fleet.read(SECONDS + 30)
        assert connections.open <= config.http.max_connections
        drained = await fleet.read(60)
        result = await settled_account(gateway, fleet.ledger(), victoria.url, site)
        counters = gateway.counters
        refused_by_gateway = counters.get("http_pushes_busy") + counters.get("throttled")
        dropped = counters.get("dropped", cls="telemetry", sink="store")
        closed = counters.get("http_connections_closed")
        refused_connections = counters.get("http_connections_refused")
    result.print("push storm", seconds=f"{produced['seconds']:.1f}",
                 drained_s=f"{drained['drained_s']:.1f}",
                 offered_per_s=f"{GATES * RATE_HZ:.0f}",
                 taken_per_s=f"{result.taken / drained['drained_s']:.0f}",
                 backlog_at_end=produced["backlog"], refused=drained["refused"],
                 failed=drained["failed"], errors=drained["errors"],
                 answers=drained["answers"],
                 alerted_ms=[round(a.alerted_s * 1000) for a in alarms],
                 answered_ms=[round(a.answered_s * 1000) for a in alarms],
                 rss_peak_mib=f"{resident.peak_mib:.0f}",
                 flood_open_at_start=started["flood_open"],
                 flood_connections=produced["flood_opened"], closed=closed,
                 refused_connections=refused_connections)
    latencies = [a.alerted_s for a in alarms]
    assert len(latencies) == ALARMS
    assert p99(latencies) < 1.0, f"forced doors alerted after {latencies} s"
    assert resident.peak_mib < ceiling_mb
    assert drained["produced"] == GATES * RATE_HZ * SECONDS
    assert produced["backlog"] > 0  # more came than the gateway took meanwhile
    assert result.taken == drained["produced"]  # every passage taken in the end
    assert (result.missing, result.twice, result.unknown) == (dropped, 0, 0)
    assert result.stored == result.taken - dropped
    # what the gateway refused, the gates were told: counted on both sides alike
    assert drained["refused"] == refused_by_gateway
    assert produced["flood_opened"] >= CONNECTIONS
