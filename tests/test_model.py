"""Records, their JSON encoding, ids and the topic scheme."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

from gateway.core.backoff import Backoff
from gateway.core.model import (
    AckCommand,
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
    Record,
    Severity,
    decode,
    delivery_class,
    encode,
    new_id,
)
from gateway.core.topics import Topics


def test_records_round_trip_with_version_and_tag() -> None:
    records: list[Record] = [
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


def test_ids_draw_no_kernel_randomness_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # a system call per reading was the cost; the per-process prefix makes them unique
    def refused(n: int) -> bytes:
        raise AssertionError(f"os.urandom({n}) called for an id")

    monkeypatch.setattr("os.urandom", refused)
    ids = [new_id(1_700_000_000_000) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert {i[:12] for i in ids} == {f"{1_700_000_000_000:012x}"}


def test_ids_of_another_process_differ_in_their_prefix() -> None:
    # a restart is a new process: its ids share no prefix with the last one's
    script = "from gateway.core.model import new_id; print(new_id(1), new_id(1))"
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    mine = new_id(1)
    prefixes = {run[0][12:22] for run in runs} | {mine[12:22]}
    assert len(prefixes) == 3
    for first, second in runs:
        assert first[:22] == second[:22]
        assert first != second


def test_a_forked_child_draws_a_prefix_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its id, then out without running the test session's exit
        os.write(write, new_id(1).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    assert child[12:22] != new_id(1)[12:22]
