"""What an upstream's sink hands its transport, and what a transport promises back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.core.clock import Clock


@dataclass(frozen=True, slots=True)
class Parcel:
    """One record as it leaves for an upstream, after the upstream's policy.

    `record_id` is the journal record's id (an aggregate's own deterministic id): the
    idempotency key, the same on every delivery of the same record.
    """

    record_id: str
    seq: int  # the journal sequence number it came from (of an aggregate: its last record)
    device: str  # as it leaves: possibly a pseudonym, or a place
    kind: str
    type: str  # event type, "reading", or the alert's state
    payload: bytes  # JSON, as the policy made it
    rule: str  # the policy rule that let it out, for the audit


class TransportDown(Exception):
    """The upstream did not confirm a delivery; `reason` says why (for logs and counters)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Transport(Protocol):
    """A connection to one upstream. `deliver` returns only once the far side confirmed
    every parcel, and raises TransportDown otherwise; it may be called again with the same
    parcels (a retry), which the far side recognises by `record_id`."""

    async def open(self) -> None: ...

    async def deliver(self, parcels: Sequence[Parcel]) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Setting:
    """What a transport may need besides its upstream's config."""

    site: str
    env: Mapping[str, str]  # where the secrets the config names are
    clock: Clock
