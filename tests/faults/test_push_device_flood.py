"""One device flooding the HTTP push port: a temperature gate gone mad pushes 2,000
readings a second over 16 connections, deaf to 429.
It is held to `limits.device_rate_hz` (each push beyond it answered 429, counted as
`throttled{device}`, logged once), and each 429 is answered `http.throttled_hold_s` late, so
that its 16 connections send at most one refused push a hold each instead of 2,000 a
second; the other gates' passages are all taken; a door forced open during the flood
alerts within 1 s; the flooding gate's own fever, on a connection of its own, passes its
throttle and alerts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from drivers.profile import ProfileLibrary
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.supervisor import Gateway
from simulators.http_pusher import HttpPusher
from simulators.push_fleet import Flooder
from tests.faults.push_storm import (
    doors,
    fleet,
    forced_door,
    gate_token,
    push_config,
    receiver_of,
    settled_account,
)
from tests.helpers import Watcher, eventually, running, unique_site

GATES = 10  # gate-1 floods; the other nine pass people at their pace
RATE_HZ = 5.0
FLOOD_S = 6.0
FLOOD_HZ = 2000.0
DEVICE_RATE_HZ = 20.0  # limits.device_rate_hz, the default
BURST_S = 5.0
CONNECTIONS = 16  # the flooder's
HOLD_S = 1.0  # http.throttled_hold_s, the default


async def test_a_flooding_gate_is_throttled_and_counted_and_no_alarm_waits_for_it(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.http_push")
    site = unique_site("push-flood")
    port = free_port()
    config = push_config(tmp_path, site, mosquitto.port, victoria.url, port, gates=GATES,
                         doors=3, limits={"device_rate_hz": DEVICE_RATE_HZ,
                                          "device_burst_s": BURST_S})
    url = f"http://127.0.0.1:{port}"
    flooder = Flooder(f"{url}/push/gate-1", gate_token(1), "127.0.2.1", Counter())
    async with running(Gateway(config)) as gateway, Watcher(
            mosquitto.port, f"sc/{site}/alerts/#", "duty") as duty, \
            doors(port, 3) as (quiet_door, door, last_door), \
            fleet(port, GATES, retry_scale=0.2) as gates, \
            HttpPusher(ProfileLibrary().get("http-temp-gate"), url, "gate-1",
                       gate_token(1)) as gate_1:
        await asyncio.wait_for(receiver_of(gateway).ready.wait(), 10)
        await eventually(lambda: gateway.connected, what="connected")
        others = gates.gates[1:]  # gate-1's own pushes are the flood's
        quiet = await forced_door(quiet_door, duty)
        producing = asyncio.ensure_future(asyncio.gather(
            *(g.produce(RATE_HZ, FLOOD_S) for g in others)))
        flooding = asyncio.ensure_future(flooder.run(FLOOD_HZ, FLOOD_S, CONNECTIONS))
        await asyncio.sleep(1.0)
        in_flood = await forced_door(door, duty)
        # the flooding gate's own fever, among the flood
        fever_pushed = time.monotonic()
        fever = await gate_1.push({"temp_x10": 38.6, "abnormal": 1, "mask": 1})
        await duty.next(lambda s: s.topic.endswith("/temp_gate.fever/gate-1")
                        and b'"firing"' in s.payload, timeout=10)
        fever_s = time.monotonic() - fever_pushed
        late = await forced_door(last_door, duty)
        rate = await flooding
        await producing
        await gates.drained(within_s=30)
        throttled = gateway.counters.get("throttled", device="gate-1")
        held = gateway.counters.get("throttled_held", device="gate-1")
        still_held = receiver_of(gateway).held.held
        others_throttled = gateway.counters.get("throttled") - throttled
        result = await settled_account(gateway, others, victoria.url, site)
    totals = gates.totals()
    result.print("push flood", flood_per_s=f"{rate:.0f}", sent=flooder.sent,
                 answers=dict(flooder.answers), throttled=throttled, held=held,
                 quiet_ms=round(quiet.alerted_s * 1000),
                 flood_ms=[round(in_flood.alerted_s * 1000), round(late.alerted_s * 1000)],
                 fever_ms=round(fever_s * 1000), others_answers=totals["answers"])
    # held to its rate: its burst and DEVICE_RATE_HZ a second, the rest answered 429
    accepted = flooder.answers[202]
    assert accepted <= DEVICE_RATE_HZ * (BURST_S + FLOOD_S + 2)
    assert flooder.answers[429] == throttled == flooder.sent - accepted - flooder.answers[0]
    assert throttled > 0
    assert others_throttled == 0
    # every 429 held (16 connections, far below the cap), none left held; so each of its
    # connections waited a hold per refusal: at most one refused push a hold each, not
    # 2,000 a second between them
    assert held == throttled
    assert still_held == 0
    assert flooder.answers[429] <= CONNECTIONS * (FLOOD_S / HOLD_S + 1)
    throttle_lines = [r for r in caplog.records if "limits.device_rate_hz" in r.getMessage()]
    assert len(throttle_lines) == 1
    # no alarm waits for it, its own neither
    assert in_flood.alerted_s < 1.0, (in_flood, quiet)
    assert late.alerted_s < 1.0, (late, quiet)
    assert fever.status == 200
    assert fever_s < 1.0
    # the other gates lost nothing
    assert result.taken == totals["produced"] == len(others) * RATE_HZ * FLOOD_S
    assert (result.missing, result.twice, result.unknown) == (0, 0, 0)
