"""A Hikvision terminal's configuration API: `/ISAPI/Event/notification/httpHosts`.

Answers HTTP digest only, as ISAPI does, and keeps what it is given as a real terminal
does: the alarm-server entries, with the password accepted but never returned.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from aiohttp import web

from drivers.digest import DigestVerifier
from gateway.ops.private_servers import free_port


class IsapiTerminal:
    """The configuration side of one terminal on a free loopback port while in use."""

    def __init__(self, username: str = "admin", password: str = "hik-admin-12345") -> None:
        self.port = free_port()
        self._username = username
        self._password = password
        self._verifier = DigestVerifier("DS-K1T671TM-3XF")
        self.hosts: list[dict[str, Any]] = []
        self.passwords: dict[str, str] = {}
        self.puts = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> IsapiTerminal:
        app = web.Application()
        app.router.add_route("*", "/ISAPI/Event/notification/httpHosts", self._hosts)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hosts(self, request: web.Request) -> web.Response:
        now = time.time()
        verdict = self._verifier.check(request.headers.get("Authorization", ""),
                                       request.method, self._username, self._password, now)
        if not verdict.ok:
            return web.Response(status=401, headers={
                "WWW-Authenticate": self._verifier.challenge(now, stale=verdict.stale)})
        if request.method == "PUT":
            body = await request.json()
            self.hosts = []
            for entry in body["HttpHostNotificationList"]:
                host = dict(entry["HttpHostNotification"])
                self.passwords[str(host["id"])] = host.pop("password", "")
                self.hosts.append(host)
            self.puts += 1
            return web.json_response({"statusCode": 1, "statusString": "OK",
                                      "subStatusCode": "ok"})
        if request.method == "GET":
            return web.json_response({"HttpHostNotificationList": [
                {"HttpHostNotification": host} for host in self.hosts]})
        return web.Response(status=405)
