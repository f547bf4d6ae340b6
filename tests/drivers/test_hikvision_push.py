"""Hikvision terminals pushing ISAPI notifications to the real aiohttp receiver."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from drivers.digest import DigestClient
from drivers.hikvision.codes import ALARM, DENIED, DOOR, GRANTED
from gateway.core.model import DeliveryClass, DeviceEvent, Reading, encode
from simulators.hikvision_terminal import FACE_JPEG, RESIDENT
from tests.drivers.hikvision_rig import open_hikvision
from tests.drivers.push_rig import KEY


def _private(records: list[DeviceEvent] | list[Reading]) -> None:
    for record in records:
        data = encode(record)
        for secret in (RESIDENT.name, RESIDENT.employee_no, RESIDENT.card_no):
            assert secret.encode() not in data
        assert FACE_JPEG not in data


@pytest.mark.parametrize("layout", ["multipart", "json", "xml"])
async def test_access_events_of_every_layout_become_typed_events(tmp_path: Path,
                                                                 layout: str) -> None:
    async with open_hikvision(tmp_path, layout=layout) as rig:
        door = rig.terminals["door-hk"]
        # codes from Hikvision's access control event type tables (drivers/hikvision/codes)
        pushes = [door.access(5, 0x4B), door.access(5, 0x09), door.access(5, 0x1B, None),
                  door.access(5, 0x1C, None), door.access(5, 0x19, None),
                  door.access(5, 0x1A, None), door.access(1, 0x404, None),
                  door.access(1, 0x40A, None), door.io(2, True), door.io(2, False)]
        assert [await door.push(alert) for alert in pushes] == [200] * len(pushes)
        events = rig.intake.journalled
        assert [(e.type, e.cls) for e in events] == [
            ("granted", DeliveryClass.EVENT), ("denied", DeliveryClass.EVENT),
            ("forced_open", DeliveryClass.ALARM), ("held_open", DeliveryClass.EVENT),
            ("door_opened", DeliveryClass.EVENT), ("door_closed", DeliveryClass.EVENT),
            ("tamper", DeliveryClass.EVENT), ("duress", DeliveryClass.ALARM),
            ("alarm_input", DeliveryClass.EVENT), ("alarm_input_cleared", DeliveryClass.EVENT)]
        assert events[0].fields == {"door": 1, "method": "face", "card": KEY(RESIDENT.card_no)}
        assert events[1].fields == {"door": 1, "reason": "unknown_card",
                                    "card": KEY(RESIDENT.card_no)}
        assert events[8].fields == {"input": 2}
        _private(events)
        pictures = door.pictures_sent
        assert pictures == (2 if layout == "multipart" else 0)
        assert rig.counters.get("privacy_dropped", device="door-hk", what="picture") == pictures
        assert rig.counters.get("privacy_dropped", device="door-hk", what="name") == 2
        assert rig.counters.get("privacy_dropped", device="door-hk", what="employee_no") == 2
        assert rig.counters.get("rejected") == 0
        assert rig.intake.alive == {"door-hk"}


async def test_thermal_terminal_reports_temperatures_and_fever_and_no_person(
        tmp_path: Path) -> None:
    async with open_hikvision(tmp_path) as rig:
        gate = rig.terminals["gate-hk"]
        assert await gate.push(gate.temperature(36.6, abnormal=False)) == 200
        assert await gate.push(gate.temperature(38.4, abnormal=True, mask="no")) == 200
        first, second = rig.intake.readings
        assert first.values == {"body_temp_c": 36.6, "abnormal": 0, "mask": 1}
        assert second.values == {"body_temp_c": 38.4, "abnormal": 1, "mask": 0}
        assert [(e.type, e.cls, e.fields) for e in rig.intake.journalled] == [
            ("fever", DeliveryClass.ALARM, {"body_temp_c": 38.4}),
            ("no_mask", DeliveryClass.EVENT, {})]
        _private(rig.intake.journalled)
        _private(rig.intake.readings)
        # a temperature is never tied to a card: not even its pseudonym is kept
        assert rig.counters.get("privacy_dropped", device="gate-hk", what="card") == 2
        assert rig.counters.get("privacy_dropped", device="gate-hk", what="picture") == 2


async def test_a_notification_sent_again_is_journalled_once(tmp_path: Path) -> None:
    async with open_hikvision(tmp_path) as rig:
        door = rig.terminals["door-hk"]
        forced = door.access(5, 0x1B, None, serial=4711)
        assert [await door.push(forced) for _ in range(3)] == [200] * 3
        assert [e.type for e in rig.intake.journalled] == ["forced_open"]
        assert rig.counters.get("duplicates_dropped", device="door-hk") == 2
        assert await door.push(door.access(5, 0x1A, None, serial=4712)) == 200
        assert [e.type for e in rig.intake.journalled] == ["forced_open", "door_closed"]


async def test_heartbeats_keep_the_terminal_alive_and_journal_nothing(tmp_path: Path) -> None:
    async with open_hikvision(tmp_path, layout="json") as rig:
        door = rig.terminals["door-hk"]
        assert await door.heartbeat() == 200
        assert rig.intake.alive == {"door-hk"}
        assert rig.intake.journalled == []
        assert rig.counters.get("heartbeats", device="door-hk") == 1


async def test_pushes_without_credentials_or_from_elsewhere_are_refused(tmp_path: Path) -> None:
    async with open_hikvision(tmp_path) as rig:
        door = rig.terminals["door-hk"]
        assert await door.push(door.access(5, 0x1B, None), credentials=False) == 401
        assert rig.counters.get("http_challenges", device="door-hk") == 1
        far = rig.terminals["door-far"]  # configured for 192.0.2.10; pushes from 127.0.0.1
        assert await far.push(far.access(5, 0x1B, None)) == 403
        assert rig.rejected("door-far", "address_not_allowed") == 1
        wrong = rig.terminals["door-hk"]
        wrong._digest = type(wrong._digest)("alarmserver", "not-the-password")
        assert await wrong.push(wrong.access(5, 0x1B, None)) == 401
        assert rig.rejected("door-hk", "unauthorised") == 1
        basic = rig.terminals["door-basic"]
        basic._password = "not-the-password"
        assert await basic.push(basic.access(5, 0x1B, None)) == 401
        assert rig.rejected("door-basic", "unauthorised") == 1
        assert rig.intake.journalled == []
        assert rig.intake.alive == set()
        basic._password = "door-basic-pass"
        assert await basic.push(basic.access(5, 0x1B, None)) == 200
        assert [e.type for e in rig.intake.journalled] == ["forced_open"]


async def test_bad_bodies_are_refused_with_the_reason_and_counted(tmp_path: Path) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><EventNotificationAlert>&b;'
              b"</EventNotificationAlert>")
    async with open_hikvision(tmp_path, http={"max_picture_push_bytes": 8192}) as rig:
        door = rig.terminals["door-hk"]
        cases = [
            (laughs, "application/xml", 400, "malformed_xml"),
            (b"{not json", "application/json", 400, "malformed_json"),
            (b"--x\r\nContent-Type: image/jpeg\r\n\r\n" + FACE_JPEG + b"\r\n--x--\r\n",
             "multipart/form-data; boundary=x", 400, "malformed_multipart"),
            (b"--x\r\nContent-Type: image/jpeg\r\n\r\n" + b"\xff" * 10_000,
             "multipart/form-data; boundary=x", 413, "body_too_large"),
            (b'{"eventType": "AccessControllerEvent"}', "application/json", 400,
             "malformed_notification"),
        ]
        for body, content_type, status, reason in cases:
            assert await door.send(body, content_type) == status, reason
            assert rig.rejected("door-hk", reason) == 1, reason
        assert rig.intake.journalled == []


def test_every_mapped_code_is_a_known_event() -> None:
    from drivers.hikvision.codes import access_event

    assert access_event(5, 0x4B) == ("granted", None)  # face authenticated: minor 75
    assert set(GRANTED).isdisjoint(DENIED)
    assert set(DOOR).isdisjoint(GRANTED)
    assert access_event(3, 0x70) is None  # an operation (remote login...) is not reported
    assert {access_event(1, minor) for minor in ALARM} >= {("duress", None), ("tamper", None)}


async def test_a_captured_push_sent_again_is_refused(tmp_path: Path) -> None:
    async with open_hikvision(tmp_path, layout="json") as rig:
        door = rig.terminals["door-hk"]
        url = f"{rig.url}/hikvision/door-hk"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"{}") as first:
                client = DigestClient("alarmserver", "door-hk-push-pass")
                client.challenged(first.headers["WWW-Authenticate"])
            captured = client.authorization("POST", "/hikvision/door-hk")
            closed = door.body(door.access(5, 0x1A, None), picture=False)[0]
            forced = door.body(door.access(5, 0x1B, None), picture=False)[0]
            async with session.post(url, data=closed,
                                    headers={"Authorization": captured}) as genuine:
                assert genuine.status == 200
            # someone on the LAN sends the captured header again, with a body of their own
            async with session.post(url, data=forced,
                                    headers={"Authorization": captured}) as replayed:
                assert replayed.status == 401
        assert rig.rejected("door-hk", "replayed") == 1
        assert [e.type for e in rig.intake.journalled] == ["door_closed"]


async def test_pictures_that_do_not_say_so_are_dropped_too(tmp_path: Path) -> None:
    # part names vary by firmware: "event_log" or "AccessControllerEvent", sometimes with
    # no content type, pictures before the notification (an open Go integration's tests)
    async with open_hikvision(tmp_path) as rig:
        door = rig.terminals["door-hk"]
        event = json.dumps(door.access(5, 0x4B)).encode()
        body = (b'--b\r\nContent-Disposition: form-data; name="Picture"\r\n\r\n' + FACE_JPEG
                + b'\r\n--b\r\nContent-Disposition: form-data; name="face"\r\n\r\n' + FACE_JPEG
                + b'\r\n--b\r\nContent-Disposition: form-data; name="AccessControllerEvent"'
                b"\r\n\r\n" + event + b"\r\n--b--\r\n")
        assert await door.send(body, "multipart/form-data; boundary=b") == 200
        assert [e.type for e in rig.intake.journalled] == ["granted"]
        assert rig.counters.get("privacy_dropped", device="door-hk", what="picture") == 2
