"""A simulated duty officer: watches the alert topics and acknowledges firing alerts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt
import msgspec

from gateway.core.model import Alert, AlertState
from gateway.core.topics import ROOT


class DutyOfficer:
    """Yields every alert state seen on `sc/{site}/alerts/+/+` and acks firing ones."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        name: str = "duty-office",
        ack_after_s: float | None = 2.0,  # None: only watch
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._host = host
        self._port = port
        self._site = site
        self.name = name
        self._ack_after_s = ack_after_s
        self._sleep = sleep
        self._acked: set[str] = set()

    async def watch(self) -> AsyncIterator[Alert]:
        async with aiomqtt.Client(self._host, self._port,
                                  identifier=f"sim-{self.name}") as client:
            await client.subscribe(f"{ROOT}/{self._site}/alerts/+/+", qos=1)
            pending: set[asyncio.Task[None]] = set()
            async for message in client.messages:
                if not isinstance(message.payload, bytes):
                    continue
                alert = msgspec.json.decode(message.payload, type=Alert)
                yield alert
                if (self._ack_after_s is not None and alert.state is AlertState.FIRING
                        and alert.id not in self._acked):
                    self._acked.add(alert.id)
                    task = asyncio.create_task(self._ack(client, str(message.topic)),
                                               name=f"sim[{self.name}].ack")
                    pending.add(task)
                    task.add_done_callback(pending.discard)

    async def _ack(self, client: aiomqtt.Client, topic: str) -> None:
        assert self._ack_after_s is not None
        await self._sleep(self._ack_after_s)
        await client.publish(f"{topic}/ack", msgspec.json.encode({"by": self.name}), qos=1)
