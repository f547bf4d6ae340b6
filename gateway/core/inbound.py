"""A message the broker delivered to the gateway, as its handlers see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple


class Inbound(NamedTuple):
    """One PUBLISH from the broker; `mid` is its packet id (0 for QoS 0).

    A named tuple: one is made for every message read, and a tuple is made in a third of
    the time a frozen dataclass takes (it sets its fields one `object.__setattr__` each).
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


# a handler does what it can at once and returns None, or returns what is left to await
Handler = Callable[[Inbound], Awaitable[None] | None]
