"""CTWing subscription pushes against the receiver on a real HTTP port, journalling for real.

Published messages are fixtures, each with its source."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drivers.ctwing.message import OnlineOffline, Other, Uplink, parse_message
from gateway.core.model import DeliveryClass
from simulators.serial_device import SerialDeviceSimulator
from tests.drivers.platform_rig import CTWING_TOKEN, MAX_BODY, PlatformRig, open_platforms

# A smoke sensor's dataReport as CTWing pushed it (profile device: serviceData), quoted in
# an open-source fire-safety platform's parser (github.com/wanghanhong/springcloud_alibaba,
# device-message .../parse/fire/smoke/lian: LiAnSmokeEnum, LiAnSmokeParseStrategy; the
# Alarm_Status table of the profile is its LiAnSmokeMapConstant)
SMOKE_REPORT: dict[str, Any] = {
    "upPacketSN": -1, "upDataSN": -1, "topic": "v1/up/ad19prof", "timestamp": 1606982320277,
    "tenantId": "10461180", "serviceId": "", "protocol": "lwm2m", "productId": "15014772",
    "payload": {"serviceId": "notification", "serviceData": {
        "TData": 30, "SNR": 1, "RSRP": 114, "IMEI": "860374051096202", "Cell_ID_Length": 8,
        "Cell_ID": "38848339", "CSQ": 5, "Battery_Level": 100, "Alarm_Status": 2,
        "AlarmLevel": 100}},
    "messageType": "dataReport", "deviceType": "", "deviceId": "acf7baaee65e431eadfb8f5fe50e8b81",
    "assocAssetId": "", "IMSI": "undefined", "IMEI": "860374051096202"}
# A pass-through (APPdata) dataReport as CTWing pushed it, from an open-source manhole
# platform's callback test (test_interfacecase, "电信回调数据/cwting/callback")
APPDATA_REPORT: dict[str, Any] = {
    "upPacketSN": -1, "upDataSN": -1, "topic": "v1/up/ad", "timestamp": 1650554828842,
    "tenantId": "2000033629", "serviceId": "", "protocol": "lwm2m", "productId": "15114816",
    "payload": {"APPdata": "AQFWMS4wAAAAACMAAAAH/wAlODYyNTkyMDUxNjUxNDcyAAEAMjUAODAAAAAAAAABAQ"
                           "AAAAEAAASD"},
    "messageType": "dataReport", "deviceType": "", "deviceId": "40edca19b0124480864366de4621de99",
    "assocAssetId": "", "IMSI": "undefined", "IMEI": "862592051651472"}
# A thing-model manhole cover monitor's dataReport as CTWing pushed it (payload: the
# model's properties), quoted in an open-source manhole platform (github.com/zhfly1992/
# locman, locman-api/.../wingiot/service/WingsIotDataTransform.java)
MANHOLE_REPORT: dict[str, Any] = {
    "IMEI": "861050042339310", "IMSI": "undefined", "deviceType": "",
    "messageType": "dataReport", "topic": "v1/up/ad19", "assocAssetId": "",
    "payload": {"manhole_cover_position_state": 0, "lean_angle": 0, "battery_voltage": 59,
                "water_level_state": 1, "Water_depth": 70, "sig": 13,
                "IMEI": "861050042339310", "IMSI": "460111174385652", "ecl": -97, "pci": 0,
                "rsrp": 100, "sinr": 0, "cell_id": 165115986, "AccX": -544, "AccY": -173,
                "AccZ": -587, "XAver": 0, "YAver": 0, "ZAver": 0, "YshackCount": 0,
                "ZshackCount": 0, "AllShackCount": 0},
    "upPacketSN": "", "upDataSN": "", "serviceId": 7, "tenantId": "10431117",
    "productId": "10045636", "deviceId": "59e0462b286a45e4bc5642109fd6ea90",
    "timestamp": 1586400800535, "protocol": "lwm2m"}
# CTWing's documented online report and low-battery eventReport (订阅推送 消息格式 examples)
ONLINE: dict[str, Any] = {
    "timestamp": 1619523036482, "tenantId": "2000033827", "protocol": "lwm2m",
    "productId": "15045240", "messageType": "deviceOnlineOfflineReport", "iccid": "undefined",
    "eventType": 1, "deviceId": "d01308047f864601a821e02dc328eab4"}
LOW_BATTERY: dict[str, Any] = {
    "timestamp": 1619523767263, "tenantId": "2000033827", "serviceId": 1002,
    "protocol": "lwm2m", "productId": "15045240", "messageType": "eventReport", "eventType": 2,
    "eventContent": {"battery_voltage": 1, "battery_state": 1}, "deviceSn": "",
    "deviceId": "d01308047f864601a821e02dc328eab4", "IMSI": "undefined",
    "IMEI": "161941770261953"}


def _bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def test_published_messages_parse_to_the_documented_values() -> None:
    smoke = parse_message(_bytes(SMOKE_REPORT))
    assert isinstance(smoke, Uplink)
    assert (smoke.device.device_id, smoke.device.imei) == (
        "acf7baaee65e431eadfb8f5fe50e8b81", "860374051096202")
    assert smoke.packet is None  # -1: the protocol numbers no packets
    assert smoke.app_data is None
    passthrough = parse_message(_bytes(APPDATA_REPORT))
    assert isinstance(passthrough, Uplink)
    assert passthrough.app_data is not None
    assert passthrough.app_data[:4] == bytes.fromhex("01015631")  # 01 01 "V1.0 ..."
    assert b"862592051651472" in passthrough.app_data  # the device puts its IMEI inside
    online = parse_message(_bytes(ONLINE))
    assert online == OnlineOffline(online.device, True)  # type: ignore[union-attr]
    event = parse_message(_bytes(LOW_BATTERY))
    assert isinstance(event, Uplink)
    assert event.message_type == "eventReport"
    assert event.device.imei == "161941770261953"
    assert parse_message(b'{"messageType": "commandResponse"}') == Other("commandResponse")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[PlatformRig]:
    async with open_platforms(tmp_path) as running:
        yield running


async def test_the_published_smoke_report_becomes_readings_and_an_event(
        rig: PlatformRig) -> None:
    delivery = await rig.ctwing.push(SMOKE_REPORT)
    assert delivery.statuses == [200]
    (event,) = rig.intake.journalled
    assert (event.device, event.type) == ("smoke-2", "heartbeat")  # Alarm_Status 2
    (reading,) = rig.intake.readings
    assert reading.values == {"battery_pct": 100, "signal_dbm": -114}
    alarm = json.loads(json.dumps(SMOKE_REPORT))
    alarm["payload"]["serviceData"]["Alarm_Status"] = 1
    alarm["timestamp"] += 60_000
    assert (await rig.ctwing.push(alarm)).statuses == [200]
    assert (rig.intake.journalled[-1].type, rig.intake.journalled[-1].cls) == (
        "alarm", DeliveryClass.ALARM)
    for status in (10, 7):  # taken off its base, then normal again
        alarm["payload"]["serviceData"]["Alarm_Status"] = status
        alarm["timestamp"] += 60_000
        assert (await rig.ctwing.push(alarm)).statuses == [200]
    assert [e.type for e in rig.intake.journalled] == ["heartbeat", "alarm", "tamper",
                                                       "alarm_cleared"]


def _cover_frame(frame: str, values: dict[str, Any]) -> bytes:
    from drivers.profile import ProfileLibrary

    device = SerialDeviceSimulator(ProfileLibrary().get("ctwing-manhole"),
                                   Path("/nonexistent/cover"))
    return device.frame(frame, values)


COVER = "cover-2"
COVER_ID = "9f00e6d1c5b94e0d8a1c1f1f0a9e2b11"
COVER_IMEI = "862592051651472"


async def test_appdata_is_decoded_by_the_byte_layout_and_a_repeat_journalled_once(
        rig: PlatformRig) -> None:
    data = _cover_frame("alarm", {"code": 1, "tilt": 35.5, "open": 1, "water": 42,
                                  "battery": 77, "rsrp": -103})
    message = rig.ctwing.app_data_report(COVER_ID, data, imei=COVER_IMEI, packet=7)
    assert (await rig.ctwing.push(message)).statuses == [200]
    assert (await rig.ctwing.push(message)).statuses == [200]  # the same upPacketSN again
    assert [(e.device, e.type, e.cls) for e in rig.intake.journalled] == [
        (COVER, "open", DeliveryClass.ALARM)]
    assert rig.intake.readings[0].values == {"tilt_deg": pytest.approx(35.5), "open": 1,
                                             "water_level_cm": 42, "battery_pct": 77,
                                             "signal_dbm": -103}
    assert rig.counters.get("redelivered", device=COVER) == 1
    # a new packet number is a new uplink
    again = rig.ctwing.app_data_report(COVER_ID, data, imei=COVER_IMEI, packet=8)
    assert (await rig.ctwing.push(again)).statuses == [200]
    assert len(rig.intake.journalled) == 2


async def test_a_broken_frame_in_appdata_is_counted_and_acknowledged(rig: PlatformRig) -> None:
    data = bytearray(_cover_frame("report", {"tilt": 2.0, "open": 0, "water": 3,
                                             "battery": 90, "rsrp": -90}))
    data[-2] ^= 0xFF  # the checksum
    message = rig.ctwing.app_data_report(COVER_ID, bytes(data), imei=COVER_IMEI)
    assert (await rig.ctwing.push(message)).statuses == [200]  # a retry would not mend it
    assert rig.rejected(COVER, "bad_checksum") == 1
    assert rig.intake.readings == []
    assert rig.intake.alive == [COVER]


async def test_a_wrong_token_in_the_url_is_refused_403_and_counted(rig: PlatformRig) -> None:
    status = await rig.ctwing.send(_bytes(SMOKE_REPORT),
                                   url=f"{rig.url}/ctwing/not-the-{CTWING_TOKEN}")
    assert status == 403
    assert rig.rejected("ctwing", "bad_token") == 1
    assert rig.intake.journalled == []
    async with aiohttp.ClientSession() as session, session.post(
            f"{rig.url}/ctwing", data=_bytes(SMOKE_REPORT)) as response:
        assert response.status in (404, 405)  # no token, no route


async def test_offline_report_takes_the_device_offline_at_once(rig: PlatformRig) -> None:
    offline = rig.ctwing.online_offline("acf7baaee65e431eadfb8f5fe50e8b81", online=False)
    assert (await rig.ctwing.push(offline)).statuses == [200]
    assert rig.intake.gone == ["smoke-2"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "malformed_push"),
    (b'{"messageType": "dataReport", "deviceId": "x", "payload": {"APPdata": "%%%"}}',
     "malformed_push"),
    (b'{"messageType": "dataReport", "deviceId": "x", "payload": {"APPdata": 12}}',
     "malformed_push"),
    (b'{"messageType": "deviceOnlineOfflineReport", "deviceId": "x", "eventType": 7}',
     "malformed_push"),
    (b'{"messageType": "dataReport", "payload": {}}', "malformed_push"),
])
async def test_bad_bodies_are_refused_400_and_counted(rig: PlatformRig, body: bytes,
                                                      reason: str) -> None:
    assert await rig.ctwing.send(body) == 400
    assert rig.rejected("ctwing", reason) == 1
    assert (await rig.ctwing.push(SMOKE_REPORT)).statuses == [200]  # others still served


async def test_oversized_and_unwanted_messages(rig: PlatformRig) -> None:
    assert await rig.ctwing.send(b"[" + b"0," * MAX_BODY + b"0]") == 413
    assert await rig.ctwing.send(b"{" + b" " * (10 * 2**20) + b"}") == 413  # 10 MB
    assert rig.rejected("ctwing", "body_too_large") == 2
    assert (await rig.ctwing.push(SMOKE_REPORT)).statuses == [200]  # and it carries on
    huge = rig.ctwing.app_data_report(COVER_ID, b"\x68" * 2048, imei=COVER_IMEI)
    assert await rig.ctwing.send(_bytes(huge)) == 400
    assert (await rig.ctwing.push({"messageType": "commandResponse", "deviceId": "x"})
            ).statuses == [200]
    assert rig.counters.get("ctwing_ignored", type="commandResponse") == 1
    unknown = dict(SMOKE_REPORT, deviceId="someone-else", IMEI="undefined")
    assert (await rig.ctwing.push(unknown)).statuses == [200]
    assert rig.rejected("ctwing", "unknown_device") == 1
    event = dict(LOW_BATTERY, deviceId="acf7baaee65e431eadfb8f5fe50e8b81")
    assert (await rig.ctwing.push(event)).statuses == [200]  # alive, nothing mapped
    assert [e.type for e in rig.intake.journalled] == ["heartbeat"]  # the smoke report's



async def test_the_published_thing_model_manhole_report_becomes_readings_and_events(
        rig: PlatformRig) -> None:
    assert (await rig.ctwing.push(MANHOLE_REPORT)).statuses == [200]
    (reading,) = [r for r in rig.intake.readings if r.device == "cover-3"]
    assert reading.values == {"tilt_deg": 0, "water_level_cm": 70}
    assert rig.intake.journalled == []  # a level cover after a start tells nothing new
    lifted = json.loads(json.dumps(MANHOLE_REPORT))
    lifted["payload"].update(manhole_cover_position_state=1, lean_angle=38)
    for state in (1, 0):  # lifted, then put back
        lifted["payload"]["manhole_cover_position_state"] = state
        lifted["timestamp"] += 60_000
        assert (await rig.ctwing.push(lifted)).statuses == [200]
    assert [(e.device, e.type, e.cls) for e in rig.intake.journalled] == [
        ("cover-3", "open", DeliveryClass.ALARM), ("cover-3", "closed", DeliveryClass.EVENT)]
    assert rig.intake.readings[-1].values["tilt_deg"] == 38
