"""Body-temperature gates: temperature in 0.1 °C, abnormal flag, mask flag, passage count.

Readings carry no personal identity: no name, card or face ever enters this model.
"""

from gateway.core.kinds.base import COMMON_EVENTS, FLAG, KindModel, ReadingSpec
from gateway.core.model import DataClass, DeviceKind

MODEL = KindModel(
    kind=DeviceKind.TEMP_GATE,
    events=COMMON_EVENTS | {"passage", "fever", "no_mask"},
    alarms=frozenset({"fever"}),
    readings={
        "body_temp_c": ReadingSpec(unit="°C", low=30.0, high=45.0),
        "abnormal": FLAG,
        "mask": FLAG,
        "passage_count": ReadingSpec(unit="count", low=0, integer=True),
    },
    coalescible=False,  # each reading is a person passing: a fever must never be shed
    # a body temperature is health data; a passage tells where someone was
    privacy={"body_temp_c": DataClass.HEALTH, "abnormal": DataClass.HEALTH,
             "value": DataClass.HEALTH, "card": DataClass.PERSONAL},
    sensitive_events={"fever": DataClass.HEALTH, "passage": DataClass.WHEREABOUTS},
    alert_class=DataClass.HEALTH,
)
