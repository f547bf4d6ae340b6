"""The gateway itself: the events it journals about its own state."""

from gateway.core.kinds.base import KindModel, ReadingSpec
from gateway.core.model import DeviceKind

# `overloaded`: a lane's oldest unhandled message stayed too old (limits.overloaded_*);
# `caught_up`: every lane's backlog is gone again. Their fields: the lane furthest behind
# (`lane`), its oldest message's age and its messages waiting
MODEL = KindModel(
    kind=DeviceKind.GATEWAY,
    events=frozenset({"overloaded", "caught_up"}),
    alarms=frozenset(),
    readings={
        "behind_s": ReadingSpec(unit="s", low=0),
        "messages": ReadingSpec(unit="messages", low=0, integer=True),
    },
    coalescible=False,
)
