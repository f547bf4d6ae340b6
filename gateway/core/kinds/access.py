"""Access control: granted/denied, forced open, held open, tamper, duress, door closed,
alarm inputs.

Card numbers never enter the model: drivers replace them with a keyed pseudonym.
"""

from gateway.core.kinds.base import COMMON_EVENTS, FLAG, KindModel
from gateway.core.model import DataClass, DeviceKind

MODEL = KindModel(
    kind=DeviceKind.ACCESS,
    events=COMMON_EVENTS | {"granted", "denied", "forced_open", "held_open", "duress",
                            "door_closed", "door_opened",
                            # a contact wired to the terminal's own alarm input
                            "alarm_input", "alarm_input_cleared"},
    alarms=frozenset({"forced_open", "duress"}),
    readings={"door_open": FLAG},
    # a card (already a pseudonym) names a person; a passage tells where someone was
    privacy={"card": DataClass.PERSONAL},
    sensitive_events={"granted": DataClass.WHEREABOUTS, "denied": DataClass.WHEREABOUTS,
                      "door_opened": DataClass.WHEREABOUTS},
)
