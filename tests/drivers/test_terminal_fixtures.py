"""Published payloads of real terminals through the gateway's parsers and mappings.

Facts only: each payload is reproduced from the source named above it.
"""

from __future__ import annotations

import json

from drivers.dahua.events import map_event, parse_part
from drivers.hikvision.alert import alert_of, decode
from drivers.hikvision.push import read_notification
from drivers.hikvision.setup import setup_request
from drivers.safe_xml import parse_xml
from gateway.core.config import HikvisionDevice
from gateway.core.model import DeviceKind
from tests.drivers.push_rig import KEY

# maciej-or/hikvision_next, tests/fixtures/ISAPI/EventNotificationAlert/
# cam1_DS-2CD2346G2-ISU_io_notification.xml: an alarm input going active
HIKVISION_IO = b"""<EventNotificationAlert version="2.0"
xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>192.168.1.151</ipAddress>
<portNo>443</portNo>
<protocol>HTTPS</protocol>
<macAddress>4f:e4:2f:81:cd:1b</macAddress>
<channelID>1</channelID>
<dateTime>2024-11-19T16:53:28+01:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>IO</eventType>
<eventState>active</eventState>
<eventDescription>IO alarm</eventDescription>
<inputIOPortID>1</inputIOPortID>
<channelName>Cam 1</channelName>
</EventNotificationAlert>"""

# maciej-or/hikvision_next, tests/fixtures/ISAPI/Event.notification.httpHosts/
# set_alarm_server_payload.xml: the alarm-server entry as ISAPI names its fields
HTTP_HOSTS = b"""<?xml version="1.0" encoding="utf-8"?>
<HttpHostNotificationList version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
  <HttpHostNotification>
    <id>1</id>
    <url>/api/hikvision</url>
    <protocolType>HTTP</protocolType>
    <parameterFormatType>XML</parameterFormatType>
    <addressingFormatType>ipaddress</addressingFormatType>
    <ipAddress>1.0.0.11</ipAddress>
    <portNo>8123</portNo>
    <httpAuthenticationMethod>none</httpAuthenticationMethod>
  </HttpHostNotification>
</HttpHostNotificationList>"""

# a DS-K1T342MFWX's push of an ISAPI client's login (major 3, MAJOR_OPERATION), as
# captured in the tests of an open Home Assistant alertStream integration
HIKVISION_OPERATION = (
    b'{"ipAddress":"192.168.7.104","portNo":443,"protocol":"HTTPS",'
    b'"dateTime":"2026-09-18T10:05:16+03:00","activePostCount":1,'
    b'"eventType":"AccessControllerEvent","eventState":"active",'
    b'"eventDescription":"Access Controller Event","AccessControllerEvent":'
    b'{"deviceName":"Access Controller","majorEventType":3,"subEventType":121,'
    b'"remoteHostAddr":"192.168.7.110","serialNo":59091,"currentEvent":false,'
    b'"frontSerialNo":59090,"label":"","purePwdVerifyEnable":true}}')

# a DS-K1T323's heartbeat (JSON in a form-data part), from an open attendance
# integration's parser tests
HIKVISION_HEARTBEAT = (
    b'{"ipAddress": "10.70.18.20", "portNo": 80, "protocol": "HTTPS", "macAddress": '
    b'"88:de:39:7a:22:cf", "channelID": 1, "dateTime": "2026-09-19T22:05:16+08:30", '
    b'"activePostCount": 1, "eventType": "heartBeat", "eventState": "active", '
    b'"eventDescription": "heartBeat"}')

# Dahua access controller, legacy text/plain event of an open integration's webhook test
# suite (testTXT001, testTXT002): a card granted, and a door broken in
DAHUA_CARD = ('Code=AccessControl;action=Pulse;index=0;data={\n"CardNo":"AABB1122","Door":0,'
              '"ErrorCode":0,"Method":1,"ReaderID":"1","Status":1,"Type":"Entry",'
              '"UTC":1790715000,"UserID":"1001","UserType":0\n}')
DAHUA_BREAK_IN = 'Code=BreakIn;action=Pulse;index=0;data={\n"Name":"SS-1","UTC":1790715001\n}'
# Dahua VTO/ACS door contact, from an open Rust integration's fake device
DAHUA_DOOR = 'Code=DoorStatus;action=Pulse;index=0;data={ "Status" : "Open" }'
# a face-temperature terminal's access record (redacted by its publisher), from an open
# Go integration's fixtures: no temperature measured (0.0), face recognised
DAHUA_THERMAL = json.dumps({
    "CardName": "REDACTED_NAME", "CardNo": "", "CardType": 0, "CreateTime": 1700000000,
    "CurrentTemperature": 0.0, "Door": 0, "ErrorCode": 0, "FaceIndex": 0,
    "IsOverTemperature": 0, "Method": 15, "ReaderID": "1", "RealUTC": 1700000000,
    "Status": 1, "TemperatureUnit": 0, "Type": "Entry", "UTC": 1700000000,
    "UserID": "REDACTED_USER_ID", "UserType": 0})


def test_hikvision_io_alert_is_an_alarm_input() -> None:
    out = decode(alert_of(read_notification(HIKVISION_IO)), DeviceKind.ACCESS, "d", 1, KEY)
    assert [(e.type, e.fields) for e in out.events] == [("alarm_input", {"input": 1})]


def test_setup_names_the_fields_as_isapi_does() -> None:
    _, hosts = parse_xml(HTTP_HOSTS)
    published = set(hosts["HttpHostNotification"])
    device = HikvisionDevice.model_validate({
        "id": "door", "kind": "access", "transport": "hikvision",
        "hikvision": {"username": "u", "password": "push-pass", "addresses": ["10.0.0.2"]}})
    body = setup_request(device, "10.0.0.1", 8080).body
    sent = set(body["HttpHostNotificationList"][0]["HttpHostNotification"])
    assert published <= sent
    assert sent - published == {"userName", "password"}  # the push credentials


def test_an_operation_record_is_not_an_access_event() -> None:
    out = decode(alert_of(read_notification(HIKVISION_OPERATION)), DeviceKind.ACCESS, "d", 1,
                 KEY)
    assert (out.events, out.ignored, out.serial) == ([], "event_code", "59091")


def test_a_heartbeat_is_only_a_heartbeat() -> None:
    out = decode(alert_of(read_notification(HIKVISION_HEARTBEAT)), DeviceKind.ACCESS, "d", 1,
                 KEY)
    assert (out.heartbeat, out.events, out.reading) == (True, [], None)


def test_dahua_published_events_map() -> None:
    mapped = []
    for text in (DAHUA_CARD, DAHUA_BREAK_IN, DAHUA_DOOR):
        event = parse_part(text)
        assert event is not None
        mapped += map_event(event, DeviceKind.ACCESS, "d", 1, KEY, "dahua:d:").events
    assert [(e.type, e.fields) for e in mapped] == [
        ("granted", {"door": 0, "method": "card", "card": KEY("AABB1122")}),
        ("forced_open", {"door": 0}), ("door_opened", {"door": 0})]


def test_dahua_thermal_record_without_a_measurement() -> None:
    event = parse_part(f"Code=AccessControl;action=Pulse;index=0;data={DAHUA_THERMAL}")
    assert event is not None
    gate = map_event(event, DeviceKind.TEMP_GATE, "g", 1, KEY, "dahua:g:")
    assert (gate.events, gate.reading, gate.ignored) == ([], None, "no_temperature")
    assert gate.dropped == {"name": 1, "employee_no": 1}
    door = map_event(event, DeviceKind.ACCESS, "d", 1, KEY, "dahua:d:")
    assert [(e.type, e.fields) for e in door.events] == [
        ("granted", {"door": 0, "method": "face"})]
    assert door.dropped == {"name": 1, "employee_no": 1, "temperature": 1}
