"""What the simulated NB-IoT platforms (OneNET, CTWing) share on the wire: one HTTP session,
a push POSTed as JSON, and the same body pushed again until it is answered 200."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiohttp


@dataclass(slots=True)
class Delivery:
    """What became of one message: the status of every attempt (0: no answer in time)."""

    id: str
    statuses: list[int] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == 200


class PushingPlatform:
    """Pushes to `url`; an attempt not answered within `timeout_s` counts as no answer (0).
    Use as `async with`."""

    def __init__(self, url: str, timeout_s: float, retries: int,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, body: bytes, *, url: str | None = None) -> int:
        """One attempt: the status, 0 when no answer came within `timeout_s`."""
        session = self._open()
        try:
            async with session.post(url or self.url, data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError):
            return 0

    async def _deliver(self, ident: str, body: bytes, pauses: Iterable[float]) -> Delivery:
        """Push `body` until answered 200, again after each pause while any is left."""
        delivery = Delivery(ident)
        delivery.statuses.append(await self.send(body))
        for pause in pauses:
            if delivery.delivered:
                break
            await self._sleep(pause)
            delivery.statuses.append(await self.send(body))
        return delivery

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the platform as `async with`")
        return self._session


def now_ms() -> int:
    return time.time_ns() // 1_000_000
