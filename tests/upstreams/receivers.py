"""What the outside platforms run, for tests: an HTTPS webhook that checks signatures, and
an MQTT subscriber (TLS and credentials where the broker wants them)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import web

from gateway.ops.private_servers import free_port
from gateway.upstreams.webhook_transport import SIGNATURE_HEADER, TIMESTAMP_HEADER

REPLAY_WINDOW_S = 300


@dataclass
class SignedWebhook:
    """An HTTPS receiver of signed JSON batches; `down` answers 503 to everything."""

    secret: bytes
    port: int = field(default_factory=free_port)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    down: bool = False
    delay_s: float = 0.0  # a slow platform: answers this long after it took a batch
    now: Callable[[], float] = time.time  # the platform's clock (epoch seconds)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/shared"

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for batch in self.batches for r in batch]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down:
            return web.Response(status=503)
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
            self.refused.append("signature")
            return web.Response(status=401)
        if not stamp.isdigit() or abs(self.now() - int(stamp)) > REPLAY_WINDOW_S:
            self.refused.append("timestamp")
            return web.Response(status=401)
        self.batches.append(json.loads(body)["records"])
        self.arrived.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def signed_webhook(secret: bytes, cert: Path, key: Path) -> AsyncIterator[SignedWebhook]:
    hook = SignedWebhook(secret)
    app = web.Application()
    app.router.add_post("/shared", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    await web.TCPSite(runner, "127.0.0.1", hook.port, ssl_context=context).start()
    try:
        yield hook
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict[str, Any]
    raw: bytes


class Subscriber:
    """A platform's own client on its broker, collecting everything under `topic_filter`."""

    def __init__(self, port: int, topic_filter: str = "#", *, ca: Path | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        tls = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
        self.client = aiomqtt.Client("localhost" if ca else "127.0.0.1", port,
                                     username=username, password=password, tls_context=tls,
                                     identifier=f"platform-{free_port()}")
        self._filter = topic_filter
        self.received: list[Received] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        await self.client.__aenter__()
        await self.client.subscribe(self._filter, qos=1)
        self._task = asyncio.create_task(self._collect(), name="test.platform")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            raw = message.payload if isinstance(message.payload, bytes) else b""
            self.received.append(Received(str(message.topic), json.loads(raw), raw))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.received]
