"""HTTP push devices against the real aiohttp receiver on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.core.model import DeliveryClass, DeviceEvent, DeviceKind, Reading, encode
from simulators.http_pusher import PushFault
from tests.drivers.push_rig import KEY, MAX_BODY, TOKENS, Rig, open_rig
from tests.helpers import eventually

CARD = "0012345678"
NAME = "Li Na"


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    limits = getattr(request, "param", {})  # [http] settings of a test, by indirection
    async with open_rig(tmp_path, http=limits) as running:
        yield running


async def test_access_controller_pushes_become_typed_events(rig: Rig) -> None:
    door = rig.pushers["door-h1"]
    granted = await door.push({"event.code": 0, "event.card": CARD, "event.door": 2,
                               "holder.name": NAME, "door_open": 1})
    forced = await door.push({"event.code": 20, "door_open": 1})
    held = await door.push({"event.code": 21, "door_open": 1})
    denied = await door.push({"event.code": 6, "event.card": CARD})
    assert [r.status for r in (granted, forced, held, denied)] == [200] * 4
    events = rig.intake.events
    assert [(e.type, e.cls) for e in events] == [
        ("granted", DeliveryClass.EVENT), ("forced_open", DeliveryClass.ALARM),
        ("held_open", DeliveryClass.EVENT), ("denied", DeliveryClass.EVENT)]
    assert [r.body["accepted"] for r in (granted, forced, held, denied)] == [[e.id] for e in
                                                                              events]
    assert all(e.kind is DeviceKind.ACCESS and e.device == "door-h1" for e in events)
    assert events[0].fields == {"door_open": 1, "card": KEY(CARD)}
    assert events[1].fields == {"door_open": 1}
    assert events[3].fields["card"] == events[0].fields["card"]
    assert rig.intake.alive == {"door-h1"}
    records: list[DeviceEvent | Reading] = [*events, *rig.intake.readings]
    for record in records:
        assert CARD.encode() not in encode(record)
        assert NAME.encode() not in encode(record)
    assert rig.counters.get("rejected") == 0


async def test_temperature_gate_pushes_become_readings_and_alarms(rig: Rig) -> None:
    gate = rig.pushers["gate-h1"]
    normal = await gate.push({"temp_x10": 36.5, "abnormal": 0, "mask": 1, "passages": 77,
                              "person.name": NAME, "person.id": "resident-0042"})
    fever = await gate.push({"temp_x10": 38.9, "abnormal": 1, "mask": 0, "passages": 78,
                             "person.name": NAME})
    # telemetry only: queued, not journalled, hence 202
    assert (normal.status, normal.body["accepted"]) == (202, [])
    assert fever.status == 200
    first, second = rig.intake.readings
    assert first.values == {"body_temp_c": 36.5, "abnormal": 0, "mask": 1, "passage_count": 77}
    assert second.values == {"body_temp_c": 38.9, "abnormal": 1, "mask": 0, "passage_count": 78}
    assert [(e.type, e.cls) for e in rig.intake.events] == [("fever", DeliveryClass.ALARM),
                                                            ("no_mask", DeliveryClass.EVENT)]
    assert fever.body["accepted"] == [e.id for e in rig.intake.events]
    records: list[DeviceEvent | Reading] = [*rig.intake.events, first, second]
    for record in records:
        assert NAME.encode() not in encode(record)
        assert b"resident-0042" not in encode(record)


@pytest.mark.parametrize(("fault", "status", "reason"), [
    (PushFault.WRONG_TOKEN, 401, "unauthorised"),
    (PushFault.OVERSIZED, 413, "body_too_large"),
    (PushFault.MALFORMED_JSON, 400, "malformed_json"),
    (PushFault.OUT_OF_RANGE, 202, "out_of_range"),
])
async def test_every_fault_is_rejected_counted_and_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture, fault: PushFault, status: int, reason: str
) -> None:
    gate, door = rig.pushers["gate-h1"], rig.pushers["door-h1"]
    caplog.set_level(logging.DEBUG)
    for sent in range(1, 4):
        result = await gate.push(fault=fault)
        assert result.status == status
        # the other device is served all the while
        assert (await door.push({"event.code": 20})).status == 200
        assert rig.rejected("gate-h1", reason) == sent
    logged = [r for r in caplog.records if "gate-h1" in r.getMessage()
              and reason in r.getMessage()]
    assert len(logged) == 1
    assert rig.counters.get("rejected", device="door-h1") == 0
    for token in TOKENS.values():
        assert token not in caplog.text
        assert token[::-1] not in caplog.text
    gate_readings = [r for r in rig.intake.readings if r.device == "gate-h1"]
    if fault is PushFault.OUT_OF_RANGE:
        # the bad value is refused, the rest of the push is kept
        assert result.body["rejected"][0]["reason"] == "out_of_range"
        assert all("body_temp_c" not in r.values for r in gate_readings)
    else:
        assert gate_readings == []
    assert (await gate.push({"abnormal": 1})).status == 200


async def test_unknown_device_missing_token_and_chunked_oversize(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{rig.url}/push/nobody", json={},
                                headers={"Authorization": f"Bearer {TOKENS['door-h1']}"}) as r:
            assert r.status == 404
        async with session.post(f"{rig.url}/push/door-h1", json={"event": {"code": 20}}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # another device's token is no key to this one
        async with session.post(f"{rig.url}/push/door-h1", json={"event": {"code": 20}},
                                headers={"Authorization": f"Bearer {TOKENS['gate-h1']}"}) as r:
            assert r.status == 401

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * (MAX_BODY // 2)

        async with session.post(f"{rig.url}/push/door-h1", data=chunks(),
                                headers={"Authorization": f"Bearer {TOKENS['door-h1']}"}) as r:
            assert r.status == 413
        async with session.post(f"{rig.url}/push/door-h1", data=b"[1, 2]",
                                headers={"Authorization": f"Bearer {TOKENS['door-h1']}"}) as r:
            assert r.status == 400
        async with session.get(f"{rig.url}/health") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ok"
    assert rig.counters.get("http_unknown_device") == 1
    assert rig.rejected("door-h1", "unauthorised") == 2
    assert rig.rejected("door-h1", "body_too_large") == 1
    assert rig.rejected("door-h1", "malformed_payload") == 1
    assert rig.intake.events == []


async def test_unmapped_codes_are_refused_when_nothing_else_is_usable(rig: Rig) -> None:
    result = await rig.pushers["door-h1"].push({"event.code": 55, "door_open": None})
    assert result.status == 422
    assert result.body["rejected"][0]["reason"] == "unmapped_event"
    assert rig.rejected("door-h1", "unmapped_event") == 1


async def test_the_answer_waits_until_the_event_is_journalled(rig: Rig) -> None:
    rig.intake.gate.clear()
    push = asyncio.create_task(rig.pushers["door-h1"].push({"event.code": 20}),
                               name="test.push")
    await asyncio.wait_for(rig.intake.waiting.wait(), 5)
    done, _ = await asyncio.wait({push}, timeout=0.2)
    assert not done, "the device heard OK before its event was durable"
    rig.intake.gate.set()
    result = await asyncio.wait_for(push, 5)
    assert result.status == 200
    assert result.body["accepted"] == [rig.intake.events[0].id]


async def test_malformed_requests_from_anyone_log_one_line(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = int(rig.url.rsplit(":", 1)[1])
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /push/door-h1 HTTP/1.1\r\nHost: gw\r\nNo colon here\r\n\r\n")
        assert b" 400 Bad Request" in await reader.read()
        writer.close()
    server_lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(server_lines) == 1, [r.getMessage() for r in server_lines]
    assert rig.counters.get("log_suppressed") == 19


@pytest.mark.parametrize("rig", [{"max_connections": 2, "max_connections_per_address": 2}],
                         indirect=True)
async def test_a_connection_in_a_request_is_never_closed_to_make_room(rig: Rig) -> None:
    connections = rig.receiver.connections
    assert connections is not None
    rig.intake.gate.clear()  # both pushes wait for the journal
    pushes = [asyncio.create_task(rig.pushers["door-h1"].push({"event.code": 20}),
                                  name="test.push.door"),
              asyncio.create_task(rig.pushers["gate-h1"].push({"abnormal": 1}),
                                  name="test.push.gate")]
    await eventually(lambda: connections.open == 2 and connections.idle == 0,
                     what="both pushes in their request")
    reader, writer = await asyncio.open_connection("127.0.0.1", int(rig.url.rsplit(":")[-1]),
                                                   local_addr=("127.0.0.2", 0))
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert rig.counters.get("http_connections_refused", reason="total") == 1
    rig.intake.gate.set()
    assert [r.status for r in await asyncio.gather(*pushes)] == [200, 200]


@pytest.mark.parametrize("rig", [{"max_connections": 3, "max_connections_per_address": 3}],
                         indirect=True)
async def test_a_device_keeps_its_connection_while_new_ones_take_each_others_room(
        rig: Rig) -> None:
    connections = rig.receiver.connections
    assert connections is not None
    door = rig.pushers["door-h1"]
    assert (await door.push({"event.code": 0})).status == 200  # kept alive after it
    port = int(rig.url.rsplit(":")[-1])
    flood = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
             for _ in range(6)]
    await eventually(lambda: rig.counters.get("http_connections_closed", reason="evicted")
                     == 4, what="the flood's connections closed for each other's room")
    # the door's connection waited longest, yet the flood's own were closed instead
    assert connections.open == 3
    assert (await door.push({"event.code": 20})).status == 200
    assert rig.counters.get("http_connections_closed", reason="evicted") == 4
    for _, writer in flood:
        writer.close()


async def test_asyncio_accept_errors_are_paced(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(50):  # what asyncio reports per pending connection once out of files
        loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                     "exception": OSError(24, "Too many open files")})
    loop.call_exception_handler({"message": "Task exception was never retrieved"})
    loop.call_exception_handler({"message": "Task exception was never retrieved"})
    lines = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert len(lines) == 1
    # asyncio's other messages are not the push port's to pace
    assert len([r for r in caplog.records if "never retrieved" in r.getMessage()]) == 2
    assert rig.counters.get("log_suppressed", logger="asyncio") == 49
async def test_deep_nesting_and_repeated_keys_are_malformed_json(rig: Rig) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['door-h1']}"}
    async with aiohttp.ClientSession() as session:
        for body in (b"[" * 500 + b"]" * 500, b'{"event": {"code": 20, "code": 22}}'):
            async with session.post(f"{rig.url}/push/door-h1", data=body,
                                    headers=headers) as r:
                assert r.status == 400
    assert rig.rejected("door-h1", "malformed_json") == 2
    assert rig.intake.events == []
