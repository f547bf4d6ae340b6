"""Which names a rule expression may use for each kind, and their types."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from gateway.core.kinds import MODELS
from gateway.core.model import DeviceKind


class FieldType(enum.Enum):
    """The type of a field or expression, as rule expressions see it."""

    NUMBER = "number"
    TEXT = "text"
    BOOL = "true/false"


# fields some drivers add to events beyond the kind's reading names
_EVENT_EXTRAS: Mapping[DeviceKind, Mapping[str, FieldType]] = {
    DeviceKind.ACCESS: {"card": FieldType.TEXT},  # a pseudonym, never the card number
}


def reading_fields(kind: DeviceKind) -> dict[str, FieldType]:
    """A reading's values: every quantity of the kind's model is a number (flags are 0/1)."""
    return {name: FieldType.NUMBER for name in MODELS[kind].readings}


def event_fields(kind: DeviceKind) -> dict[str, FieldType]:
    """An event's fields: drivers copy the payload's readings into them, plus a few extras."""
    return {**reading_fields(kind), **_EVENT_EXTRAS.get(kind, {})}


def common_fields(kinds: Iterable[DeviceKind], *, readings: bool) -> dict[str, FieldType]:
    """The names every one of `kinds` has, with one type."""
    tables = [reading_fields(k) if readings else event_fields(k) for k in kinds]
    if not tables:
        return {}
    first, *rest = tables
    return {name: t for name, t in first.items() if all(other.get(name) is t for other in rest)}
