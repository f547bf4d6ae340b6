"""What a compound's gateway answers the city board's acknowledgements (gateway/upstreams/
city_acks.py), without a cluster: journalled by `city:<user>` where its upstream lets the
city, refused and counted otherwise. The path over the real cluster: tests/city/
test_city_acks.py."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gateway.acks import AckRefusedError
from gateway.core.city import CityAck, NatsAccess
from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.model import Alert, AlertState, DeviceKind, Severity
from gateway.core.upstream_config import JetStreamUpstream
from gateway.upstreams.city_acks import CityAckListener
from gateway.upstreams.transport import Setting

FIRING = Alert(id="al-1", ts=1, rule="elder.sos", device="e1", kind=DeviceKind.ELDER_BUTTON,
               state=AlertState.FIRING, severity=Severity.CRITICAL, since=1)


class Desk:
    def __init__(self) -> None:
        self.journalled: list[tuple[str, str, str]] = []

    async def acknowledge(self, rule: str, device: str, by: str) -> None:
        if by.endswith("late"):
            raise AckRefusedError("not_firing", "acknowledged already")
        self.journalled.append((rule, device, by))


def _listener(city_acks: bool) -> tuple[CityAckListener, Desk, Counters]:
    config = JetStreamUpstream(name="city", kind="jetstream", policy=Path("city.yaml"),
                               district="north", nats=NatsAccess(servers=["nats://127.0.0.1:1"]),
                               city_acks=city_acks)
    desk, counters = Desk(), Counters()
    return (CityAckListener(config, Setting("c1", {}, ManualClock()), desk, lambda: [FIRING],
                            counters), desk, counters)


def _ack(alert: str, user: str = "zhang") -> bytes:
    return msgspec.json.encode(CityAck(alert=alert, user=user))


async def test_a_granted_compound_journals_the_city_s_acknowledgement() -> None:
    listener, desk, counters = _listener(city_acks=True)
    answers = [await listener.handle(data) for data in (
        _ack("al-1"), _ack("al-9"), _ack("al-1", "li-late"), b'{"alert": "al-1"}', b"\xff")]
    assert listener.subject == "scack.north.c1"
    assert desk.journalled == [("elder.sos", "e1", "city:zhang")]
    assert [(a.ok, a.reason) for a in answers] == [
        (True, ""), (False, "not_firing"), (False, "not_firing"), (False, "malformed"),
        (False, "malformed")]
    # the desk counts its own refusals; the listener what never reached it
    assert counters.get("ack_rejected", rule="unknown", reason="not_firing") == 1
    assert counters.get("ack_rejected", rule="unknown", reason="malformed") == 2


async def test_a_compound_that_does_not_let_the_city_refuses_and_counts() -> None:
    listener, desk, counters = _listener(city_acks=False)
    answer = await listener.handle(_ack("al-1"))
    assert (answer.ok, answer.reason) == (False, "city_not_granted")
    assert "city_acks" in answer.error
    assert desk.journalled == []
    assert counters.get("ack_rejected", rule="elder.sos", reason="city_not_granted") == 1
