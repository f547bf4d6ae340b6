"""Line protocol of readings: every numeric value a float field, in name order; what has no
number (text, null, not finite) left out."""

from __future__ import annotations

from gateway.core.config import Location
from gateway.core.model import DeviceKind, Reading, Scalar
from gateway.sinks.points import PointMaker

MAKER = PointMaker("c1", lambda device: Location(building="3", floor=2))


def reading(values: dict[str, Scalar], device: str = "gate-1") -> Reading:
    return Reading(id="r1", ts=1_700_000_000_123, kind=DeviceKind.TEMP_GATE, device=device,
                   values=values)


def test_every_number_is_a_float_field_in_name_order() -> None:
    line = MAKER.line(reading({"temp": 36.6, "count": 12, "mask": True, "off": False,
                               "neg": -0.5, "big": 2**53 + 1}))
    assert line == ("sc_temp_gate,building=3,device=gate-1,floor=2,kind=temp_gate,site=c1 "
                    "big=9007199254740992.0,count=12.0,mask=1.0,neg=-0.5,off=0.0,temp=36.6 "
                    "1700000000123")


def test_values_without_a_number_are_left_out() -> None:
    line = MAKER.line(reading({"temp": 36.6, "nan": float("nan"), "up": float("inf"),
                               "down": float("-inf"), "text": "ok"}))
    assert line == ("sc_temp_gate,building=3,device=gate-1,floor=2,kind=temp_gate,site=c1 "
                    "temp=36.6 1700000000123")


def test_a_reading_with_no_number_has_no_point() -> None:
    assert MAKER.line(reading({"text": "ok", "nan": float("nan")})) is None


def test_field_names_are_escaped() -> None:
    line = MAKER.line(reading({"a b,c=d": 1.5}, device="gate 2"))
    assert line == ("sc_temp_gate,building=3,device=gate\\ 2,floor=2,kind=temp_gate,site=c1 "
                    "a\\ b\\,c\\=d=1.5 1700000000123")
