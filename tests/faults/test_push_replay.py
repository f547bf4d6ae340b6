"""Replay on the HTTP push port: the gateway stops while the gates go on passing people and
trying to push; each gate keeps its passages and, once the gateway is back, pushes its
whole backlog, oldest first. A door forced open during the drain alerts within 1 s; the
drain completes, and every passage is in the store once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.supervisor import Gateway
from tests.faults.push_storm import (
    doors,
    fleet,
    forced_door,
    push_config,
    receiver_of,
    settled_account,
)
from tests.helpers import Watcher, eventually, running, unique_site

GATES = 50
RATE_HZ = 15.0
UP_S = 1.0  # pushing to the running gateway, before it stops
DOWN_S = 5.0  # the gateway stopped: 3,750 passages kept by the gates


async def test_gates_push_their_backlog_once_the_gateway_is_back_and_an_alarm_passes_it(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("push-replay")
    port = free_port()
    config = push_config(tmp_path, site, mosquitto.port, victoria.url, port, gates=GATES,
                         doors=1)
    async with fleet(port, GATES, retry_s=0.2) as gates, Watcher(
            mosquitto.port, f"sc/{site}/alerts/access.forced_open/#", "duty") as duty:
        async with running(Gateway(config)) as gateway:
            await asyncio.wait_for(receiver_of(gateway).ready.wait(), 10)
            producing = asyncio.ensure_future(gates.produce(RATE_HZ, UP_S + DOWN_S))
            await asyncio.sleep(UP_S)
        taken_before = sum(len(g.ledger.taken) for g in gates.gates)
        await producing  # the gateway is stopped: every push fails, the gates keep them
        queued = gates.backlog
        failed_while_down = gates.totals()["failed"]
        async with running(Gateway(config)) as gateway, doors(port, 1) as (door,):
            receiver = receiver_of(gateway)
            await asyncio.wait_for(receiver.ready.wait(), 10)
            await eventually(lambda: gateway.connected, what="connected")
            started = time.monotonic()
            await eventually(lambda: gates.backlog < queued * 0.8, what="the drain under way")
            in_drain = gates.backlog
            alarm = await forced_door(door, duty)
            left_at_alarm = gates.backlog
            await gates.drained(within_s=60)
            drained_s = time.monotonic() - started
            result = await settled_account(gateway, gates.gates, victoria.url, site)
            dropped = gateway.counters.get("dropped", cls="telemetry", sink="store")
        totals = gates.totals()
    result.print("push replay", taken_before_stop=taken_before, queued=queued,
                 failed_while_down=failed_while_down, drained_s=f"{drained_s:.1f}",
                 backlog_at_alarm=f"{in_drain}->{left_at_alarm}",
                 alarm_answered_ms=round(alarm.answered_s * 1000),
                 alarm_alerted_ms=round(alarm.alerted_s * 1000), answers=totals["answers"],
                 errors=totals["errors"])
    assert queued >= GATES * RATE_HZ * DOWN_S * 0.9
    assert left_at_alarm > 0, "the alarm came after the drain"
    assert alarm.alerted_s < 1.0, f"the forced door alerted after {alarm.alerted_s:.2f} s"
    assert totals["produced"] == GATES * RATE_HZ * (UP_S + DOWN_S)
    assert result.taken == totals["produced"]
    assert (result.missing, result.twice, result.unknown, dropped) == (0, 0, 0, 0)
