"""Fuzz targets of the makers' terminals: Hikvision pushes and Dahua event streams.

Bytes in; out only the parsers' documented errors (PushRefused naming a reason, or a part
of a stream refused as malformed), and records that keep to the kinds' model with every
card pseudonymised and no personal field.
"""

from __future__ import annotations

from drivers.dahua.events import StreamEventError, map_event, parse_part
from drivers.hikvision.alert import AlertError, alert_of, decode
from drivers.hikvision.push import PushRefused, read_notification
from drivers.multipart import MultipartError, MultipartReader, PartData, PartEnd, PartHead
from drivers.pseudonym import Pseudonymiser
from gateway.core.kinds import MODELS
from gateway.core.model import DeviceEvent, DeviceKind, Reading, encode
from gateway.core.model import decode as decode_record

KEY = Pseudonymiser(b"fuzzing-key-0123456789abcdef")
_KINDS = (DeviceKind.ACCESS, DeviceKind.TEMP_GATE)


def _check(events: list[DeviceEvent], reading: Reading | None) -> None:
    for event in events:
        assert event.type in MODELS[event.kind].events, event.type
        card = event.fields.get("card")
        assert card is None or str(card).startswith("p:"), card
        assert set(event.fields) <= {"card", "door", "reason", "method", "input",
                                     "body_temp_c"}, event.fields
    if reading is not None:
        specs = MODELS[reading.kind].readings
        for name, value in reading.values.items():
            assert specs[name].accepts(float(value)), (name, value)
        assert decode_record(encode(reading)) == reading


def _parts(data: bytes, boundary: str) -> list[bytes]:
    """The parts of `data`, fed in two pieces; MultipartError for a malformed body."""
    reader = MultipartReader(boundary)
    parts: list[bytes] = []
    held: bytearray | None = None
    half = len(data) // 2
    for piece in reader.feed(data[:half]) + reader.feed(data[half:]):
        if isinstance(piece, PartHead):
            held = bytearray()
        elif isinstance(piece, PartData):
            assert held is not None
            held += piece.data
        elif isinstance(piece, PartEnd):
            assert held is not None
            parts.append(bytes(held))
            held = None
    return parts


def hikvision_push(data: bytes) -> None:
    """Any body as a Hikvision push: multipart when it starts with a boundary, else one
    notification (XML or JSON); each notification decoded for both kinds of terminal."""
    try:
        documents = (_parts(data, "MIME_boundary") if data.startswith(b"--")
                     else [data])
    except MultipartError:
        return
    for document in documents:
        try:
            value = read_notification(document)
        except PushRefused as exc:
            assert exc.reason in ("malformed_xml", "malformed_json"), exc.reason
            continue
        for kind in _KINDS:
            try:
                notification = decode(alert_of(value), kind, "d1", 1, KEY)
            except AlertError as exc:
                assert str(exc)
                continue
            _check(notification.events, notification.reading)


def dahua_stream(data: bytes) -> None:
    """Any bytes as a Dahua event stream (boundary `myboundary`)."""
    try:
        parts = _parts(data, "myboundary")
    except MultipartError:
        return
    for raw in parts:
        try:
            event = parse_part(raw.decode("utf-8"))
        except (StreamEventError, UnicodeDecodeError):
            continue
        if event is None:
            continue
        for kind in _KINDS:
            mapped = map_event(event, kind, "d1", 1, KEY, "dahua:d1:")
            _check(mapped.events, mapped.reading)


SEEDS: dict[str, list[bytes]] = {
    "hikvision_push": [
        b'--MIME_boundary\r\nContent-Disposition: form-data; name="event_log"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'{"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType":'
        b' 5, "subEventType": 75, "cardNo": "123", "name": "x", "serialNo": 1}}\r\n'
        b'--MIME_boundary\r\nContent-Disposition: form-data; name="Picture"\r\n'
        b"Content-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\r\n"
        b"--MIME_boundary--\r\n",
        b"<EventNotificationAlert><eventType>IO</eventType><eventState>active</eventState>"
        b"<inputIOPortID>1</inputIOPortID></EventNotificationAlert>",
        b'{"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType":'
        b' 5, "subEventType": 75, "currTemperature": 38.2, "isAbnomalTemperature": true,'
        b' "mask": "no", "thermometryUnit": "celsius"}}',
    ],
    "dahua_stream": [
        b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nHeartbeat\r\n"
        b"\r\n--myboundary\r\nContent-Type: text/plain\r\n\r\nCode=AccessControl;action=Pulse;"
        b'index=0;data={\n "CardNo": "8F3A", "Status": 1, "Method": 15, "UTC": 1,\n'
        b' "CurrentTemperature": 37.9, "IsOverTemperature": 1, "Mask": 2}\r\n\r\n'
        b"--myboundary\r\n",
    ],
}
