"""A local HTTP receiver for notifications sent with apprise's json:// scheme."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.ops.private_servers import free_port
from tests.http_server import serving


@dataclass
class Webhook:
    port: int = field(default_factory=free_port)
    received: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.received]

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path.strip("/"), await request.json(), time.time()))
        self.arrived.set()
        return web.Response(status=200)


@asynccontextmanager
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    async with serving(hook.port, "/{path:.*}", hook.handle):
        yield hook
