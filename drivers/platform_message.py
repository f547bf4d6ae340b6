"""What the NB-IoT platforms' push messages share: a JSON object, refused with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.json_map import MalformedJsonError, parse_json


class MalformedPushError(ValueError):
    """The body is not a push of the platform (or its message is not one of its messages)."""


@dataclass(frozen=True, slots=True)
class Other:
    """A message of a type the gateway does not read: counted and answered."""

    message_type: str


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """`data` as a JSON object; MalformedPushError naming `what` (the body, msg) if not."""
    try:
        raw = parse_json(data)
    except MalformedJsonError as exc:
        raise MalformedPushError(f"{what} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedPushError(f"{what} is not a JSON object")
    return raw
