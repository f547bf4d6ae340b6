"""Records, their JSON encoding, ids and the topic scheme."""

from __future__ import annotations

import msgspec
import pytest

from gateway.backoff import Backoff
from gateway.model import (
    AckCommand,
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
    Severity,
    decode,
    delivery_class,
    encode,
    new_id,
)
from gateway.topics import Topics


def test_records_round_trip_with_version_and_tag() -> None:
    records = [
        Reading(id=new_id(1), ts=1, kind=DeviceKind.TEMP_GATE, device="g1",
                values={"temp_c": 36.6, "mask": True}),
        DeviceEvent(id=new_id(2), ts=2, kind=DeviceKind.SMOKE, device="s1", type="alarm",
                    cls=DeliveryClass.ALARM),
        Alert(id=new_id(3), ts=3, rule="elder.sos", device="e1", kind=DeviceKind.ELDER_BUTTON,
              state=AlertState.FIRING, severity=Severity.CRITICAL, since=3, value=1),
        AckCommand(id=new_id(4), ts=4, rule="elder.sos", device="e1", by="duty"),
    ]
    for record in records:
        data = encode(record)
        assert decode(data) == record
        body = msgspec.json.decode(data)
        assert body["v"] == 1
        assert body["rec"] in {"reading", "event", "alert", "ack"}
    assert [delivery_class(r) for r in records] == [
        DeliveryClass.TELEMETRY, DeliveryClass.ALARM, DeliveryClass.ALARM, DeliveryClass.EVENT]


def test_records_are_frozen() -> None:
    event = DeviceEvent(id="x", ts=1, kind=DeviceKind.SMOKE, device="s", type="alarm")
    with pytest.raises(AttributeError):
        event.ts = 2  # type: ignore[misc]


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [new_id(1_700_000_000_000 + n // 10) for n in range(1000)]
    assert len(set(ids)) == 1000
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_bad_payloads_are_rejected_with_a_reason() -> None:
    with pytest.raises(msgspec.ValidationError, match="kind"):
        decode(b'{"rec":"event","id":"x","ts":1,"kind":"toaster","device":"d","type":"t"}')
    with pytest.raises(msgspec.DecodeError):
        decode(b"{")


def test_topic_scheme() -> None:
    topics = Topics("c1")
    assert topics.telemetry(DeviceKind.SMOKE, "s1") == "sc/c1/smoke/s1/telemetry"
    assert topics.event(DeviceKind.ACCESS, "a1") == "sc/c1/access/a1/event"
    assert topics.status(DeviceKind.MANHOLE, "m1") == "sc/c1/manhole/m1/status"
    assert topics.alert("elder.sos", "e1") == "sc/c1/alerts/elder.sos/e1"
    assert topics.alert_ack("elder.sos", "e1") == "sc/c1/alerts/elder.sos/e1/ack"
    assert topics.gateway_status == "sc/c1/gateway/status"
    assert topics.parse_ack("sc/c1/alerts/elder.sos/e1/ack") == ("elder.sos", "e1")
    assert topics.parse_ack("sc/c2/alerts/elder.sos/e1/ack") is None
    assert topics.parse_ack("sc/c1/alerts/elder.sos/e1") is None


def test_backoff_is_capped_jittered_and_resets() -> None:
    import random

    backoff = Backoff(0.5, 4.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0.05 <= d <= 4.0 for d in delays)
    assert max(delays[:1]) <= 0.5
    assert len(set(delays)) == 10
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5
