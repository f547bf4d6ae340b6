"""An HTTP proxy in front of the real store that answers with scripted faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from gateway.ops.private_servers import free_port
from tests.http_server import serving


class FaultProxy:
    """Forwards /api/v2/write to `upstream`, except for the faults queued in `script`.

    A step is an HTTP status to answer instead, or "slow" (hold the request past the
    client's timeout, then forward it: the store may or may not have the batch).
    """

    def __init__(self, upstream: str, slow_s: float = 2.0) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.script: list[int | str] = []
        self.slow_s = slow_s
        self.answered: list[int | str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        step = self.script.pop(0) if self.script else "pass"
        self.answered.append(step)
        if isinstance(step, int):
            return web.Response(status=step, text='{"message":"injected"}')
        if step == "slow":
            await asyncio.sleep(self.slow_s)
        async with aiohttp.ClientSession() as session, session.post(
            f"{self.upstream}{request.path_qs}", data=body, headers={
                "Content-Type": request.headers.get("Content-Type", "text/plain")}
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read())


@asynccontextmanager
async def fault_proxy(upstream: str, slow_s: float = 2.0) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(upstream, slow_s)
    async with serving(proxy.port, "/api/v2/write", proxy.handle):
        yield proxy
