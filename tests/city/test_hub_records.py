"""What the hub reads of a compound's message, and what it refuses (with the reason)."""

from __future__ import annotations

import json

import pytest

from gateway.core.config import Location
from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
)
from hub.records import BadParcel, read

SUBJECT = "sc.north.c1.elder_button.e1.press"


def test_an_event_keeps_its_time_fields_and_class() -> None:
    payload = {"rec": "event", "id": "a1", "ts": 1000, "type": "press", "cls": "alarm",
               "fields": {"n": 3}, "kind": "elder_button", "device": "ignored"}
    arrival = read(SUBJECT, json.dumps(payload).encode(), "msg-1")
    assert arrival.compound == ("north", "c1")
    assert arrival.record == DeviceEvent(id="a1", ts=1000, kind=DeviceKind.ELDER_BUTTON,
                                         device="e1", type="press", cls=DeliveryClass.ALARM,
                                         fields={"n": 3})


def test_a_policy_shaped_event_keeps_its_own_fields_and_its_place() -> None:
    # as gateway/upstreams/shaping.py makes it: an event's fields beside the kept ones
    payload = {"id": "a2", "ts": 2000, "kind": "smoke", "type": "fault", "device": "s1",
               "building": "3", "floor": 2, "code": 7, "note": "x"}
    arrival = read("sc.north.c1.smoke.s1.fault", json.dumps(payload).encode(), "m")
    assert arrival.record == DeviceEvent(id="a2", ts=2000, kind=DeviceKind.SMOKE, device="s1",
                                         type="fault", fields={"code": 7, "note": "x"})
    assert arrival.place == Location(building="3", floor=2)


def test_what_a_policy_dropped_is_taken_from_the_subject_and_the_message_id() -> None:
    arrival = read("sc.north.c1.temp_gate.g%2E1.reading", b'{"ts": 5, "values": {"t": 36.5}}',
                   "msg-9")
    assert arrival.record == Reading(id="msg-9", ts=5, kind=DeviceKind.TEMP_GATE, device="g.1",
                                     values={"t": 36.5})
    alert = read("sc.north.c1.smoke.s1.acknowledged",
                 b'{"id": "al:acknowledged", "ts": 9, "rule": "smoke.alarm",'
                 b' "severity": "critical"}', None)
    assert isinstance(alert.record, Alert)
    assert (alert.record.id, alert.record.state, alert.record.since) == (
        "al", AlertState.ACKNOWLEDGED, 9)


@pytest.mark.parametrize(("subject", "payload", "reason"), [
    ("sc.north.c1.elder_button.e1", b'{"ts": 1}', "subject"),
    ("sc.north.c1.toaster.e1.press", b'{"ts": 1}', "kind"),
    (SUBJECT, b'{"ts": "yesterday"}', "no_ts"),
    (SUBJECT, b'{"ts": 1, "cls": "urgent"}', "payload"),
    (SUBJECT, b"[1, 2]", "payload"),
    (SUBJECT, b"\xff", "payload"),
    (SUBJECT, b'{"ts": 1}' + b" " * 70_000, "too_large"),
    ("sc.north.c1.smoke.s1.firing", b'{"ts": 1, "id": "x"}', "alert"),
    (SUBJECT, b'{"ts": 1, "rec": "ack", "id": "x"}', "rec"),
])
def test_what_cannot_be_read_is_refused_with_its_reason(subject: str, payload: bytes,
                                                        reason: str) -> None:
    with pytest.raises(BadParcel) as refused:
        read(subject, payload, "m")
    assert refused.value.reason == reason


def test_a_record_needs_an_id() -> None:
    with pytest.raises(BadParcel, match="no_id"):
        read(SUBJECT, b'{"ts": 1}', None)
