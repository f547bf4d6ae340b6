"""Status events carry an `online` field, so a query can take each device's latest status."""

from __future__ import annotations

from gateway.core.config import Location
from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.sinks.points import PointMaker

MAKER = PointMaker("c1", lambda device: Location(building="3"))


def test_offline_and_online_events_carry_the_online_field_as_a_float() -> None:
    offline = make_event(DeviceKind.SMOKE, "smoke-3-2", "offline", 1_000)
    online = make_event(DeviceKind.SMOKE, "smoke-3-2", "online", 2_000)
    assert MAKER.line(offline) == (
        "sc_event,building=3,class=event,device=smoke-3-2,kind=smoke,site=c1,type=offline "
        "count=1i,online=0.0 1000")
    assert MAKER.line(online) == (
        "sc_event,building=3,class=event,device=smoke-3-2,kind=smoke,site=c1,type=online "
        "count=1i,online=1.0 2000")


def test_other_events_have_no_online_field() -> None:
    for type_ in ("alarm", "heartbeat", "fault"):
        line = MAKER.line(make_event(DeviceKind.SMOKE, "smoke-3-2", type_, 1_000))
        assert line is not None
        assert "online=" not in line, line
