"""One-touch elder alarm buttons: press, long press, cancel."""

from gateway.core.kinds.base import COMMON_EVENTS, KindModel, ReadingSpec
from gateway.core.model import DataClass, DeviceKind

MODEL = KindModel(
    kind=DeviceKind.ELDER_BUTTON,
    events=COMMON_EVENTS | {"press", "long_press", "cancel"},
    alarms=frozenset({"press", "long_press"}),
    readings={
        "battery_pct": ReadingSpec(unit="%", low=0, high=100),
        "battery": ReadingSpec(unit="%", low=0, high=100),
        "linkquality": ReadingSpec(unit="lqi", low=0, high=255),
        "duration_ms": ReadingSpec(unit="ms", low=0),
    },
    # the button stands for the elder who wears it; a press or a cancel is a health matter
    privacy={"device": DataClass.PERSONAL},
    sensitive_events={"press": DataClass.HEALTH, "long_press": DataClass.HEALTH,
                      "cancel": DataClass.HEALTH},
    alert_class=DataClass.HEALTH,
)
