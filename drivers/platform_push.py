"""What the OneNET and CTWing receivers share: routes on the HTTP push port, and each
uplink journalled once however often the platform pushes it.

A platform pushes a message again until it hears 200 (OneNET within 5 s, 16 times over
2 h 45 min; CTWing up to 3 times). A message is answered only after its events are on
disk; a message given again (same message id or packet number, same content) within the
platform's `redelivery_window_s` was journalled already: it is answered 200 again, counted
as `redelivered{device}`, and journalled no second time. The receipt is journalled in the
same commit as the events, so this holds across a restart of the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, runtime_checkable

from aiohttp import web

from drivers.intake import Intake, MessageIntake
from drivers.json_map import Decoded
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt, ReceiptBook
from gateway.core.model import DeviceKind

log = logging.getLogger(__name__)

# the body of a request, or the answer when it was too large or too late (HttpPushReceiver)
ReadBody = Callable[[web.Request, str], Awaitable[bytes | web.Response]]
# a push slot for the request from a sender (label) whose devices are of the kinds given,
# held until it is answered: an alarm's slot if any kind calls for help (none: another's);
# the 503 answer when none is free (or, for another's, when the gateway stayed behind while
# it waited). Taken once the sender is authenticated, before the body is read where the
# route allows it (HttpPushReceiver)
Admit = Callable[[web.Request, str, Collection[DeviceKind]], Awaitable[web.Response | None]]


@runtime_checkable
class PlatformIntake(MessageIntake, Protocol):
    """What a platform's receiver hands its uplinks to (its `unreachable`: the platform
    says the device went offline)."""


class PushRoutes(Protocol):
    """Receivers served on the HTTP push port next to the devices' own pushes."""

    @property
    def devices(self) -> int: ...

    def add_routes(self, router: web.UrlDispatcher, intake: Intake, read: ReadBody,
                   admit: Admit) -> None:
        ...


def platform_intake(intake: Intake, platform: str) -> PlatformIntake:
    if not isinstance(intake, PlatformIntake):
        raise TypeError(f"{platform} pushes need an intake that journals receipts and takes "
                        "devices offline")
    return intake


def digest(*parts: bytes) -> bytes:
    return hashlib.blake2b(b"\0".join(parts), digest_size=16).digest()


class Uplinks:
    """Hands a platform's decoded uplinks to the intake, each message once."""

    def __init__(self, platform: str, receipts: ReceiptBook | None, window_s: float,
                 clock: Clock, counters: Counters) -> None:
        self.platform = platform
        self._receipts = receipts
        self._window_ms = round(window_s * 1000)
        self._clock = clock
        self._counters = counters
        # one message at a time per device: a retry waits for the first to be journalled
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    def receipt(self, key: str, content: bytes) -> Receipt | None:
        """The receipt of a new message; None when it was journalled already."""
        full = f"{self.platform}:{key}"
        fingerprint = digest(full.encode(), content)
        now = self._clock.now_ms()
        if self._receipts is not None and self._window_ms:
            known = self._receipts.receipt(full)
            if (known is not None and known.digest == fingerprint
                    and now - known.at <= self._window_ms):
                return None
        return Receipt(full, fingerprint, now)

    async def deliver(self, intake: PlatformIntake, device: str, decoded: Decoded,
                      receipt: Receipt) -> list[str]:
        """Journal the events (with the receipt), queue the reading; the ids journalled."""
        for reason, detail in decoded.problems:
            self._counters.reject(log, device, reason, f"{self.platform}: {detail}")
        intake.seen(device)
        if decoded.events:
            await intake.events(decoded.events, receipt)  # on disk before the 200
        else:
            self.note(receipt)  # telemetry is not journalled: the receipt is kept in memory
        if decoded.reading is not None:
            intake.reading(decoded.reading)
        self._counters.inc(f"{self.platform}_uplinks", device=device)
        if not decoded.problems:
            self._counters.recovered(device)
        return [event.id for event in decoded.events]

    def note(self, receipt: Receipt) -> None:
        """Remember a message that left nothing in the journal."""
        if self._receipts is not None:
            self._receipts.note(receipt)

    def again(self, device: str) -> web.Response:
        self._counters.inc("redelivered", device=device)
        return answer(200, accepted=[], again=True)


def answer(status: int, **body: object) -> web.Response:
    return web.json_response(body, status=status)
