"""Smoke sensors: alarm, fault, tamper, low battery, heartbeat; obscuration or ppm."""

from gateway.core.kinds.base import COMMON_EVENTS, FLAG, KindModel, ReadingSpec
from gateway.core.model import DeviceKind

MODEL = KindModel(
    kind=DeviceKind.SMOKE,
    # supervision (监管, a supervisory signal) and shielded (屏蔽, switched off at the
    # panel): states of a fire panel's detectors, reported over GB/T 26875.3
    events=COMMON_EVENTS | {"alarm", "alarm_cleared", "test", "supervision",
                            "supervision_cleared", "shielded", "shielded_cleared"},
    alarms=frozenset({"alarm"}),
    readings={
        "obscuration_pct_ft": ReadingSpec(unit="%/ft", low=0, high=30),
        "smoke_ppm": ReadingSpec(unit="ppm", low=0, high=10_000),
        "temperature_c": ReadingSpec(unit="°C", low=-40, high=125),
        "battery_pct": ReadingSpec(unit="%", low=0, high=100),
        "linkquality": ReadingSpec(unit="lqi", low=0, high=255),
        # NB-IoT reference signal received power: the radio link of a battery device
        "signal_dbm": ReadingSpec(unit="dBm", low=-160, high=0),
        "smoke": FLAG,
    },
)
