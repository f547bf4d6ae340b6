"""The HTTP push port under overload: a device's readings beyond its rate are refused 429
(its events pass), and the platforms' routes take push slots of the class decided per route.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from drivers import http_push
from gateway.core.model import DeliveryClass, DeviceKind
from tests.drivers.hikvision_rig import open_hikvision
from tests.drivers.platform_rig import PRODUCT, open_platforms
from tests.drivers.push_rig import open_rig
from tests.drivers.test_ctwing_push import SMOKE_REPORT
from tests.helpers import eventually

RATE_HZ = 2.0
BURST_S = 5.0  # ten pushes of readings at once


async def test_readings_beyond_the_device_rate_are_refused_429_and_events_pass(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.http_push")
    async with open_rig(tmp_path, http={"throttled_hold_s": 0},  # each 429 at once
                        receiver={"rate_hz": RATE_HZ, "burst_s": BURST_S}) as rig:
        gate = rig.pushers["gate-h1"]
        statuses = [(await gate.push({"temp_x10": 36.5, "abnormal": 0, "mask": 1,
                                      "passages": n})).status for n in range(15)]
        assert statuses == [202] * 10 + [429] * 5
        assert rig.counters.get("throttled", device="gate-h1") == 5
        # a fever is an event: it passes the throttled gate, with its reading
        fever = await gate.push({"temp_x10": 38.9, "abnormal": 1, "mask": 1, "passages": 15})
        assert fever.status == 200
        assert [(e.type, e.cls) for e in rig.intake.events] == [("fever", DeliveryClass.ALARM)]
        assert len(rig.intake.readings) == 11
        # the other device is not held to the gate's rate
        door = rig.pushers["door-h1"]
        assert (await door.push({"event.code": 0, "door_open": 0})).status == 200
        rig.clock.advance(1.0)  # two more a second
        statuses = [(await gate.push({"temp_x10": 36.5, "abnormal": 0, "mask": 1,
                                      "passages": n})).status for n in range(16, 19)]
        assert statuses == [202, 202, 429]
        assert rig.counters.get("throttled", device="gate-h1") == 6
    throttled = [r for r in caplog.records if "limits.device_rate_hz" in r.getMessage()]
    assert len(throttled) == 1  # once a minute, not once a push


async def test_a_429_answer_tells_when_to_come_again(tmp_path: Path) -> None:
    async with open_rig(tmp_path, receiver={"rate_hz": 1.0, "burst_s": 1.0}) as rig:
        gate = rig.pushers["gate-h1"]
        assert (await gate.push({"abnormal": 0, "mask": 1})).status == 202
        refused = await gate.push({"abnormal": 0, "mask": 1})
        assert (refused.status, refused.body["error"]) == (
            429, "pushing faster than the device's rate")


async def test_a_throttled_push_is_answered_after_the_hold_beside_its_alarm(
        tmp_path: Path) -> None:
    # a quarter of 8 connections: two answers held at once
    async with open_rig(tmp_path, http={"throttled_hold_s": 3.0, "max_connections": 8,
                                        "max_connections_per_address": 8},
                        receiver={"rate_hz": 1.0, "burst_s": 1.0}) as rig:
        gate, door = rig.pushers["gate-h1"], rig.pushers["door-h1"]
        reading = {"temp_x10": 36.5, "abnormal": 0, "mask": 1}
        assert (await gate.push(reading)).status == 202  # its burst
        # three pushes beyond its rate, each on a connection of its own
        refused = [asyncio.create_task(gate.push(reading), name=f"test.refused{n}")
                   for n in range(3)]
        done, held = await asyncio.wait(refused, return_when=asyncio.FIRST_COMPLETED)
        # the third beyond the held ones' cap: answered at once
        assert [t.result().status for t in done] == [429]
        assert len(held) == rig.receiver.held.held == 2
        assert rig.counters.get("throttled", device="gate-h1") == 3
        assert rig.counters.get("throttled_held", device="gate-h1") == 2
        # held answers keep neither a push slot nor the device's turn: its fever on a new
        # connection, and another device's push, are taken while they wait
        assert rig.receiver.slots.in_use == 0
        fever = await gate.push({"temp_x10": 38.9, "abnormal": 1, "mask": 1})
        assert fever.status == 200
        assert (await door.push({"event.code": 0, "door_open": 0})).status == 200
        assert [e.type for e in rig.intake.events] == ["fever", "granted"]
        assert not any(t.done() for t in held)
        answers = [await asyncio.wait_for(t, 10) for t in held]
        assert [(a.status, a.body["error"]) for a in answers] == [
            (429, "pushing faster than the device's rate")] * 2
        assert rig.receiver.held.held == 0
        # the gate's readings taken: its burst and the one with its fever
        assert [r.device for r in rig.intake.readings].count("gate-h1") == 2


async def test_hikvision_terminals_push_in_the_slots_of_their_kind(tmp_path: Path) -> None:
    async with open_hikvision(tmp_path) as rig:
        slots = rig.receiver.slots
        slots.in_use = 64 - 16  # every slot but those kept for alarms is taken
        door, gate = rig.terminals["door-hk"], rig.terminals["gate-hk"]
        assert await door.push(door.access(5, 0x1B, None)) == 200  # forced open
        assert await gate.push(gate.temperature(38.4, abnormal=True)) == 503
        assert rig.counters.get("http_pushes_busy", cls="other") == 1
        assert [(e.device, e.type) for e in rig.intake.journalled] == [("door-hk",
                                                                         "forced_open")]
        assert slots.in_use == 64 - 16  # each slot given back with the answer
        slots.in_use = 0
        assert await gate.push(gate.temperature(38.4, abnormal=True)) == 200


async def test_platform_routes_push_in_the_slots_decided_per_route(tmp_path: Path) -> None:
    async with open_platforms(tmp_path) as rig:
        slots = rig.receiver.slots
        slots.in_use = 64 - 16
        # CTWing: its URL is its credential, and its devices (smoke, manhole) call for help
        status = await rig.ctwing.send(json.dumps(SMOKE_REPORT).encode())
        assert status == 200
        # OneNET: who sends it is known only from the signature in the body: no alarm slot
        message = rig.onenet.property_notify(PRODUCT, "smoke-0001", {"smoke_state": 1})
        assert await rig.onenet.send(rig.onenet.envelope(message)) == 503
        assert rig.counters.get("http_pushes_busy", cls="other") == 1
        assert slots.in_use == 64 - 16
        slots.in_use = 0
        assert await rig.onenet.send(rig.onenet.envelope(message)) == 200
        assert [(e.kind, e.device) for e in rig.intake.journalled][-1] == (DeviceKind.SMOKE,
                                                                            "smoke-1")


async def test_while_the_rules_are_behind_only_alarm_devices_pushes_are_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    behind = [True]
    async with open_rig(tmp_path, receiver={"alarm_kinds": [DeviceKind.ACCESS],
                                            "behind": lambda: behind[0]}) as rig:
        gate, door = rig.pushers["gate-h1"], rig.pushers["door-h1"]
        held = asyncio.create_task(gate.push({"temp_x10": 38.9, "abnormal": 1, "mask": 1}),
                                   name="test.held")
        await eventually(lambda: rig.receiver.slots.in_use == 1, what="the gate's push held")
        assert (await door.push({"event.code": 20})).status == 200  # an alarm device's
        assert [e.type for e in rig.intake.events] == ["forced_open"]
        assert not held.done()
        behind[0] = False  # the rules caught up
        assert (await asyncio.wait_for(held, 5)).status == 200
        assert [e.type for e in rig.intake.events] == ["forced_open", "fever"]
        # behind for longer than a push is held: 503, and the slot given back
        monkeypatch.setattr(http_push, "HOLD_S", 0.1)
        behind[0] = True
        refused = await gate.push({"temp_x10": 38.9, "abnormal": 1, "mask": 1})
        assert (refused.status, refused.body["error"]) == (503, "busy")
        assert rig.counters.get("http_pushes_busy", cls="other", reason="downstream") == 1
        assert rig.receiver.slots.in_use == 0
