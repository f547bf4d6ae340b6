"""A message the broker delivered to the gateway, as its handlers see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Inbound:
    """One PUBLISH from the broker; `mid` is its packet id (0 for QoS 0)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


# a handler does what it can at once and returns None, or returns what is left to await
Handler = Callable[[Inbound], Awaitable[None] | None]
