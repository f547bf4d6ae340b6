"""OneNET Studio pushes against the receiver on a real HTTP port, journalling for real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from drivers.onenet.signature import encrypt, sign
from gateway.core.model import DeliveryClass, DeviceKind
from gateway.journal import Journal
from tests.drivers.platform_rig import AES_KEY, MAX_BODY, PRODUCT, PlatformRig, open_platforms

SMOKE = "smoke-0001"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[PlatformRig]:
    async with open_platforms(tmp_path) as running:
        yield running


async def test_the_instance_verification_echoes_msg_only_for_the_token(rig: PlatformRig
                                                                       ) -> None:
    status, body = await rig.onenet.verify()
    assert status == 200
    assert len(body) == 16  # msg itself, nothing around it
    forged = await rig.onenet.verify(token="someone-elses-token")
    assert forged[0] == 403
    assert rig.rejected("onenet", "bad_signature") == 1
    async with aiohttp.ClientSession() as session, session.get(
            f"{rig.url}/onenet", params={"msg": "x"}) as response:
        assert response.status == 400
    assert rig.rejected("onenet", "malformed_verification") == 1


async def test_a_smoke_alarm_is_journalled_before_the_platform_hears_200(
        rig: PlatformRig) -> None:
    rig.intake.gate.clear()  # hold the journal's commit
    message = rig.onenet.property_notify(PRODUCT, SMOKE, {
        "smoke_state": 1, "battery_percentage": 87, "rsrp": -97})
    pushing = asyncio.create_task(rig.onenet.push(message))
    await asyncio.wait_for(rig.intake.waiting.wait(), 5)
    await asyncio.sleep(0)
    assert not pushing.done()  # no answer while the alarm is not on disk
    rig.intake.gate.set()
    delivery = await asyncio.wait_for(pushing, 5)
    assert delivery.statuses == [200]
    (event,) = rig.intake.journalled
    assert (event.kind, event.device, event.type, event.cls) == (
        DeviceKind.SMOKE, "smoke-1", "alarm", DeliveryClass.ALARM)
    (reading,) = rig.intake.readings
    assert reading.values == {"smoke": 1, "battery_pct": 87, "signal_dbm": -97}
    assert rig.intake.alive == ["smoke-1"]
    assert rig.counters.get("onenet_uplinks", device="smoke-1") == 1


async def test_a_wrong_signature_is_refused_403_and_counted(rig: PlatformRig) -> None:
    message = rig.onenet.property_notify(PRODUCT, SMOKE, {"smoke_state": 1})
    for sent in (1, 2):
        status = await rig.onenet.send(rig.onenet.envelope(message, token="guessed-token"))
        assert status == 403
        assert rig.rejected("onenet", "bad_signature") == sent
    # a signature of other content: the msg was changed on the way
    body = json.loads(rig.onenet.envelope(message))
    body["msg"] = body["msg"].replace('"value":1', '"value":0')
    assert await rig.onenet.send(json.dumps(body).encode()) == 403
    assert rig.intake.journalled == []
    assert rig.intake.readings == []


async def test_a_retry_after_a_lost_200_is_journalled_once(rig: PlatformRig) -> None:
    message = rig.onenet.property_notify(PRODUCT, SMOKE, {"smoke_state": 1})
    body = rig.onenet.envelope(message, "msg-42")
    assert await rig.onenet.send(body) == 200
    assert await rig.onenet.send(body) == 200  # the platform did not hear the first 200
    assert len(rig.intake.journalled) == 1
    assert rig.counters.get("redelivered", device="smoke-1") == 1
    # a new message with the same content is news
    assert await rig.onenet.send(rig.onenet.envelope(
        rig.onenet.property_notify(PRODUCT, SMOKE, {"smoke_state": 0}), "msg-43")) == 200
    assert [e.type for e in rig.intake.journalled] == ["alarm", "alarm_cleared"]


async def test_a_retry_while_the_first_push_waits_for_the_journal_is_journalled_once(
        tmp_path: Path) -> None:
    async with open_platforms(tmp_path, onenet_timeout_s=0.5) as rig:
        rig.intake.gate.clear()

        async def lost_answer(_: float) -> None:
            rig.intake.gate.set()  # the journal commits after the platform gave up waiting

        rig.onenet._sleep = lost_answer
        delivery = await rig.onenet.push(rig.onenet.property_notify(
            PRODUCT, SMOKE, {"smoke_state": 1}))
        assert delivery.statuses == [0, 200]  # no answer in time, then 200 for the retry
        assert [e.type for e in rig.intake.journalled] == ["alarm"]
        assert rig.counters.get("redelivered", device="smoke-1") == 1


async def test_the_message_id_is_remembered_across_a_restart(tmp_path: Path) -> None:
    journal_path = tmp_path / "platforms.db"
    message_id = "msg-after-restart"
    async with Journal(journal_path) as journal, open_platforms(
            tmp_path, journal=journal) as rig:
        body = rig.onenet.envelope(rig.onenet.property_notify(
            PRODUCT, SMOKE, {"smoke_state": 1}), message_id)
        assert await rig.onenet.send(body) == 200
        first = journal.last_seq
    async with Journal(journal_path) as journal, open_platforms(
            tmp_path, journal=journal) as rig:
        assert await rig.onenet.send(body) == 200
        assert journal.last_seq == first
        assert rig.intake.journalled == []
        assert rig.counters.get("redelivered", device="smoke-1") == 1


async def test_life_cycle_offline_takes_the_device_offline_at_once(rig: PlatformRig) -> None:
    gone = await rig.onenet.push(rig.onenet.life_cycle(PRODUCT, SMOKE, online=False))
    back = await rig.onenet.push(rig.onenet.life_cycle(PRODUCT, SMOKE, online=True))
    assert gone.statuses == back.statuses == [200]
    assert rig.intake.gone == ["smoke-1"]
    assert rig.intake.alive == ["smoke-1"]


async def test_an_lwm2m_device_is_found_by_its_imei(rig: PlatformRig) -> None:
    message = rig.onenet.property_notify("other-product", "869975034412345", {
        "tilt_angle": 35, "cover_state": 1, "water_level": 40, "battery_percentage": 60,
        "rsrp": -101}, imei="869975034412345")
    assert (await rig.onenet.push(message)).statuses == [200]
    assert [(e.device, e.type) for e in rig.intake.journalled] == [("cover-1", "open")]
    assert rig.intake.readings[0].values == {"tilt_deg": 35, "water_level_cm": 40,
                                             "battery_pct": 60, "signal_dbm": -101}


async def test_secure_mode_pushes_are_decrypted(tmp_path: Path) -> None:
    async with open_platforms(tmp_path, aes_key=AES_KEY) as rig:
        message = rig.onenet.property_notify(PRODUCT, SMOKE, {"smoke_state": 1})
        body = rig.onenet.envelope(message)
        assert b"smoke_state" not in body  # the msg travels encrypted
        assert (await rig.onenet.send(body)) == 200
        assert [e.type for e in rig.intake.journalled] == ["alarm"]
        # signed right but not decryptable: Base64 of garbage, and not Base64 at all
        for msg in (encrypt("another-16-chars", json.dumps(message)), "%%%not-base64%%%",
                    "AAAA"):
            envelope = {"msg": msg, "nonce": "abcdefgh",
                        "signature": sign(rig.onenet.token, "abcdefgh", msg),
                        "time": 1591340648197, "id": "3799902"}
            assert await rig.onenet.send(json.dumps(envelope).encode()) == 400
        assert rig.rejected("onenet", "undecryptable") == 3
        assert len(rig.intake.journalled) == 1


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"{not json", 400, "malformed_push"),
    (b"[1, 2]", 400, "malformed_push"),
    (b'{"msg": "x", "nonce": "abcdefgh"}', 400, "malformed_push"),
    (b"x" * (MAX_BODY + 1), 413, "body_too_large"),
])
async def test_bad_bodies_are_refused_and_counted(rig: PlatformRig, body: bytes, status: int,
                                                  reason: str) -> None:
    assert await rig.onenet.send(body) == status
    assert rig.rejected("onenet", reason) == 1
    # the platform's good pushes go on being served
    assert (await rig.onenet.push(rig.onenet.property_notify(
        PRODUCT, SMOKE, {"smoke_state": 1}))).statuses == [200]


async def test_a_ten_megabyte_body_is_refused_unread(rig: PlatformRig) -> None:
    assert await rig.onenet.send(b"{" + b" " * (10 * 2**20) + b"}") == 413
    assert rig.rejected("onenet", "body_too_large") == 1


async def test_signed_messages_without_use_are_acknowledged_and_counted(
        rig: PlatformRig) -> None:
    scene = {"projectId": "990909090", "messageType": "sceneLog", "data": {}}
    unknown = rig.onenet.property_notify(PRODUCT, "not-configured", {"smoke_state": 1})
    broken = {"messageType": "lifeCycle", "deviceName": SMOKE, "data": {"status": "asleep"}}
    assert (await rig.onenet.push(scene)).statuses == [200]
    assert (await rig.onenet.push(unknown)).statuses == [200]  # else pushed 16 times more
    assert await rig.onenet.send(rig.onenet.envelope(broken)) == 400
    assert rig.counters.get("onenet_ignored", type="sceneLog") == 1
    assert rig.rejected("onenet", "unknown_device") == 1
    assert rig.rejected("onenet", "malformed_message") == 1
    assert rig.intake.journalled == []
