"""Manhole covers: tilt vs installed angle, open/displaced, water level, gas."""

from gateway.core.kinds.base import COMMON_EVENTS, FLAG, KindModel, ReadingSpec
from gateway.core.model import DeviceKind

MODEL = KindModel(
    kind=DeviceKind.MANHOLE,
    events=COMMON_EVENTS | {"open", "closed", "displaced", "water_high", "water_ok", "gas",
                            "gas_cleared"},
    alarms=frozenset({"open", "displaced", "gas"}),
    readings={
        "tilt_deg": ReadingSpec(unit="°", low=0, high=180),
        "installed_tilt_deg": ReadingSpec(unit="°", low=0, high=180),
        "water_level_cm": ReadingSpec(unit="cm", low=0, high=1000),
        "gas_ppm": ReadingSpec(unit="ppm", low=0, high=100_000),
        "battery_pct": ReadingSpec(unit="%", low=0, high=100),
        "linkquality": ReadingSpec(unit="lqi", low=0, high=255),
        # NB-IoT reference signal received power: the radio link of a battery device
        "signal_dbm": ReadingSpec(unit="dBm", low=-160, high=0),
        "open": FLAG,
    },
)
