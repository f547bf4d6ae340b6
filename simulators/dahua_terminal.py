"""A Dahua access or face-temperature terminal serving its event stream.

`GET /cgi-bin/eventManager.cgi?action=attach&codes=[...]&heartbeat=N` with HTTP digest
authentication, answered as Dahua's HTTP API documents it: `multipart/x-mixed-replace;
boundary=myboundary`, one `text/plain` part per event (`Code=...;action=...;index=...;
data={...}`, the JSON over several lines) and a `Heartbeat` part every N seconds.

Like the real terminal, it keeps the events it could not deliver: when a stream breaks,
the next one starts with the event that was being written, and with the one before it (the
terminal cannot know whether that one arrived). `drop_mid_event()` breaks the stream in
the middle of the next event's part.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from types import TracebackType
from typing import Any

from aiohttp import web

from drivers.digest import DigestVerifier
from gateway.ops.private_servers import free_port

BOUNDARY = "myboundary"


class DahuaTerminal:
    """One terminal on a free loopback port while in use."""

    def __init__(self, username: str = "admin", password: str = "dahua-admin-1",
                 *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self._username = username
        self._password = password
        self._verifier = DigestVerifier("Login to 6H0C0D1PAZ00001")
        self._log: list[bytes] = []  # every event part, in order
        self._written = 0  # events written whole, in order
        self._resume: int | None = None  # where the next stream starts, after a break
        self._changed = asyncio.Event()
        self._drop_next = False
        self._drop_at: set[int] = set()  # events whose part is cut in the middle
        self._records = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.silent = False  # no heartbeats
        self.attaches = 0
        self.refused = 0

    async def __aenter__(self) -> DahuaTerminal:
        app = web.Application()
        app.router.add_get("/cgi-bin/eventManager.cgi", self._attach)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what happens at the terminal ------------------------------------------------------

    def emit(self, code: str, action: str = "Pulse", index: int = 0,
             data: dict[str, Any] | None = None) -> None:
        """An event, sent on the open stream (or on the next one)."""
        text = f"Code={code};action={action};index={index}"
        if data is not None:
            text += ";data=" + json.dumps(data, indent=3)
        body = (text + "\r\n").encode()
        if self._drop_next:
            self._drop_next = False
            self._drop_at.add(len(self._log))
        self._log.append(f"--{BOUNDARY}\r\nContent-Type: text/plain\r\nContent-Length: "
                         f"{len(body)}\r\n\r\n".encode() + body + b"\r\n")
        self._changed.set()

    def access(self, *, granted: bool, card: str, user: str, name: str, door: int = 0,
               method: int = 1, error: int = 0, **extra: Any) -> None:
        """A person at the door (card, user id and name, as the terminal reports them)."""
        now = int(time.time())
        self.emit("AccessControl", data={
            "CardName": name, "CardNo": card, "CardType": 0, "Door": door,
            "ErrorCode": 0 if granted else error, "Method": method, "Name": name,
            "ReaderID": "1", "RecNo": next(self._records), "Status": 1 if granted else 0,
            "Type": "Entry", "UTC": now, "RealUTC": now, "UserID": user, "UserType": 0,
            **extra})

    def forget_nonces(self) -> None:
        """Forget every nonce handed out (as after a reboot): an answer to an old challenge
        is refused, without `stale`."""
        self._verifier = DigestVerifier(self._verifier.realm)

    def drop_mid_event(self) -> None:
        """Break the stream halfway through the part of the next event emitted."""
        self._drop_next = True

    @property
    def sent(self) -> int:
        """Events emitted so far."""
        return len(self._log)

    # -- the stream ------------------------------------------------------------------------

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("action") != "attach":
            return web.Response(status=400, text="Error\r\nBad Request!\r\n")
        header = request.headers.get("Authorization", "")
        now = time.time()
        verdict = self._verifier.check(header, "GET", self._username, self._password, now)
        if not verdict.ok:
            self.refused += bool(header)
            return web.Response(status=401, text="Error\r\nUnauthorized!\r\n", headers={
                "WWW-Authenticate": self._verifier.challenge(now, stale=verdict.stale)})
        heartbeat = float(request.query.get("heartbeat", "60") or 60)
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-cache", "Connection": "close"})
        await response.prepare(request)
        self.attaches += 1
        cursor = self._resume if self._resume is not None else self._written
        self._resume = None
        beat = asyncio.get_running_loop().time() + heartbeat
        try:
            while True:
                while cursor < len(self._log):
                    part = self._log[cursor]
                    if cursor in self._drop_at:
                        self._drop_at.discard(cursor)
                        await response.write(part[:len(part) // 2])
                        self._resume = max(0, cursor - 1)
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    await response.write(part)
                    cursor += 1
                    self._written = max(self._written, cursor)
                self._changed.clear()
                wait = beat - asyncio.get_running_loop().time()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0)):
                        await self._changed.wait()
                if asyncio.get_running_loop().time() >= beat:
                    beat += heartbeat
                    if not self.silent:
                        await response.write(f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n"
                                             "Content-Length: 11\r\n\r\nHeartbeat\r\n\r\n"
                                             .encode())
        except ConnectionError:
            # the client went away: what was not written whole is sent on the next stream
            self._resume = max(0, cursor - 1)
            return response
