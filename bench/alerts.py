"""A separate MQTT client that timestamps every alert transition it receives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import aiomqtt
import msgspec

from bench.hostctl import BenchError
from gateway.core.model import Alert, AlertState

Arrival = tuple[Alert, float]  # the alert and time.monotonic() when it arrived


class AlertWatcher:
    """Subscribed to `sc/{site}/alerts/+/+`; alerts are queued per device."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._queues: defaultdict[str, asyncio.Queue[Arrival]] = defaultdict(asyncio.Queue)
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pump = asyncio.create_task(self._collect(), name="bench.alerts")

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._pump

    async def _collect(self) -> None:
        async for message in self._client.messages:
            arrived = time.monotonic()
            if not isinstance(message.payload, bytes):
                continue
            try:
                alert = msgspec.json.decode(message.payload, type=Alert)
            except msgspec.MsgspecError:
                continue
            self._queues[alert.device].put_nowait((alert, arrived))

    def queue(self, device: str) -> asyncio.Queue[Arrival]:
        """What arrived for `device` and was not waited for."""
        return self._queues[device]

    async def wait(self, device: str, state: AlertState, since_ms: int,
                   within_s: float = 10.0) -> Arrival:
        """The next `state` transition of `device` stamped at or after `since_ms`."""
        if self._pump is None:
            raise BenchError("the alert subscriber is not running")
        queue = self._queues[device]
        deadline = time.monotonic() + within_s
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait((get, self._pump), timeout=deadline - time.monotonic(),
                                         return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                if self._pump in done:
                    raise BenchError(f"the alert subscriber stopped: {self._pump.exception()}")
                raise BenchError(f"no {state} alert for {device} within {within_s} s")
            alert, arrived = get.result()
            if alert.state is state and alert.ts >= since_ms:
                return alert, arrived


@contextlib.asynccontextmanager
async def watch_alerts(port: int, site: str) -> AsyncIterator[AlertWatcher]:
    async with aiomqtt.Client("127.0.0.1", port,
                              identifier=f"bench-alerts-{os.getpid()}") as client:
        await client.subscribe(f"sc/{site}/alerts/+/+", qos=1)
        watcher = AlertWatcher(client)
        watcher.start()
        try:
            yield watcher
        finally:
            await watcher.stop()
