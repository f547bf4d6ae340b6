"""What a platform's receiver on the HTTP push port does whatever the platform (OneNET,
CTWing): a decoder for each of its devices, a push slot and the body of each push, bad
pushes refused and counted with a reason (`rejected{device=<platform label>}`), messages
it has no use for answered 200 and counted, and a device's decoded uplink handed to the
intake once (platform_push.Uplinks).

What is the platform's own stays in its receiver: its routes, how a push proves where it
comes from, its envelope and messages, and how a device is found by the names it gives.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Generic, TypeVar

from aiohttp import web

from drivers.intake import Intake
from drivers.json_map import Decoded
from drivers.platform_message import Other
from drivers.platform_push import (
    Admit,
    PlatformIntake,
    ReadBody,
    Uplinks,
    answer,
    platform_intake,
)
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt, ReceiptBook
from gateway.core.model import DeviceKind

DecoderT = TypeVar("DecoderT")


class PlatformReceiver(ABC, Generic[DecoderT]):
    """A platform's endpoint: `platform` its name in errors, `label` the `device` label of
    what cannot be told apart by device, `log` where its rejections are told."""

    def __init__(self, platform: str, label: str, log: logging.Logger, window_s: float,
                 clock: Clock, counters: Counters, receipts: ReceiptBook | None) -> None:
        self._platform = platform
        self._label = label
        self._log = log
        self._clock = clock
        self._counters = counters
        self._decoders: dict[str, DecoderT] = {}  # by the gateway's device id
        self.uplinks = Uplinks(label, receipts, window_s, clock, counters)
        self._intake: PlatformIntake | None = None
        self._read: ReadBody | None = None
        self._admit: Admit | None = None

    @property
    def devices(self) -> int:
        return len(self._decoders)

    def add_routes(self, router: web.UrlDispatcher, intake: Intake, read: ReadBody,
                   admit: Admit) -> None:
        self._intake = platform_intake(intake, self._platform)
        self._read = read
        self._admit = admit
        self._add_routes(router)

    @abstractmethod
    def _add_routes(self, router: web.UrlDispatcher) -> None:
        """The platform's own routes."""

    def _refuse(self, status: int, reason: str, detail: str) -> web.Response:
        self._counters.reject(self._log, self._label, reason, detail)
        return answer(status, error=reason)

    async def _body(self, request: web.Request,
                    kinds: Collection[DeviceKind]) -> bytes | web.Response:
        """The push's body, read in a slot for devices of the kinds given (none: the other
        class's); the answer when no slot was free or the body did not come whole."""
        assert self._admit is not None
        assert self._read is not None
        busy = await self._admit(request, self._label, kinds)
        if busy is not None:
            return busy
        return await self._read(request, self._label)

    def _ignored(self, message: Other) -> web.Response:
        self._counters.inc(f"{self._label}_ignored", type=message.message_type[:32])
        return answer(200, accepted=[], ignored=True)

    def _unknown(self, push: str, device: object) -> web.Response:
        """A push for a device the gateway does not know (`push`: how the log names it)."""
        self._counters.reject(self._log, self._label, "unknown_device",
                              f"{push} for a device not configured ({device}); "
                              "acknowledged so it is not pushed again")
        return answer(200, accepted=[], ignored=True)

    def _online(self, device: str, online: bool) -> None:
        """The platform says the device came online or went offline."""
        assert self._intake is not None
        if online:
            self._intake.seen(device)
        else:
            self._intake.unreachable(device)

    async def _deliver(self, device: str, decoded: Decoded,
                       receipt: Receipt) -> web.Response:
        """Hand the device's decoded uplink to the intake; the answer to the platform."""
        assert self._intake is not None
        accepted = await self.uplinks.deliver(self._intake, device, decoded, receipt)
        return answer(200, accepted=accepted,
                      rejected=[{"reason": r, "detail": d} for r, d in decoded.problems])
