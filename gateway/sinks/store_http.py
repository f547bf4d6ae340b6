"""One kept-alive HTTP/1.1 connection to the time-series store, for POSTing line protocol.

The store writers need one kind of request: a POST with a body of known length to one
origin, answered by a status and a short body. This does that on asyncio streams, so a
gateway loads no HTTP library for it (aiohttp stays with the servers: HTTP push devices and
the metrics endpoint, loaded when configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY = 64 * 1024  # of an answer: more is not read, and the connection is closed after
MAX_HEADERS = 100


class StoreProtocolError(ConnectionError):
    """The store's answer was not HTTP/1.x as expected; the connection is dropped."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class StoreConnection:
    """POSTs to the store at `url` (http or https, with any path prefix), reusing one
    connection while the store keeps it open. `opened` counts the connections made."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._tls = url.startswith("https:")
        self._host = ""
        self._port = 0
        self._authority = ""
        self._prefix = ""
        self._problem: str | None = None  # the URL cannot be used: every post says why
        try:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("no host")
            self._host = parts.hostname
            self._port = parts.port or (443 if self._tls else 80)
            authority = parts.netloc.rpartition("@")[2]
            self._authority = authority if authority.isascii() else authority.encode(
                "idna").decode("ascii")
            self._prefix = parts.path.rstrip("/")
        except (ValueError, UnicodeError) as exc:
            self._problem = f"store.url {url!r} is not a usable http(s) URL: {exc}"
        self._ssl: ssl.SSLContext | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._turn = asyncio.Lock()  # one request at a time on the one connection
        self.opened = 0

    async def post(self, path: str, params: Mapping[str, str], headers: Mapping[str, str],
                   body: bytes) -> Answer:
        """One request and its answer; raises OSError (StoreProtocolError for a garbled
        answer) or, from the caller's timeout, TimeoutError. A kept connection the store
        closed meanwhile is replaced once, before anything was read from it."""
        if self._problem is not None:
            raise StoreProtocolError(self._problem)
        async with self._turn:
            return await self._post(path, params, headers, body)

    async def _post(self, path: str, params: Mapping[str, str], headers: Mapping[str, str],
                    body: bytes) -> Answer:
        target = f"{self._prefix}{path}?{urllib.parse.urlencode(params)}"
        lines = [f"POST {target} HTTP/1.1", f"Host: {self._authority}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        kept = self._reader is not None and not self._reader.at_eof()
        if not kept:
            await self._open()
        try:
            try:
                return await self._exchange(request)
            except _ClosedBeforeAnswer:
                if not kept:
                    raise
            # the store closed the kept connection (idle for too long) as the request went
            await self._open()
            return await self._exchange(request)
        except _ClosedBeforeAnswer:
            self.close()
            raise StoreProtocolError("the store closed the connection without an answer"
                                     ) from None
        except BaseException:
            self.close()  # in an unknown state: cancelled, timed out or broken
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def aclose(self) -> None:
        """Close, and wait until the connection is gone."""
        writer = self._writer
        self.close()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _open(self) -> None:
        self.close()
        if self._tls and self._ssl is None:
            # reads the system's trusted certificates from disk: not on the event loop
            self._ssl = await asyncio.to_thread(ssl.create_default_context)
        self._reader, self._writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl if self._tls else None)
        self.opened += 1

    async def _exchange(self, request: bytes) -> Answer:
        reader, writer = self._reader, self._writer
        assert reader is not None
        assert writer is not None
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
        except ConnectionError:
            raise _ClosedBeforeAnswer from None
        if not status_line:
            raise _ClosedBeforeAnswer
        try:
            return await self._answer(status_line, reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise StoreProtocolError(f"garbled answer from the store: {exc}") from exc

    async def _answer(self, status_line: bytes, reader: asyncio.StreamReader) -> Answer:
        version, _, rest = status_line.decode("latin-1").partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"status line {status_line[:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError(f"more than {MAX_HEADERS} header lines")
        keep = (version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower())
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, complete = await _chunks(reader)
            keep = keep and complete
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = await reader.readexactly(min(length, MAX_BODY))
            keep = keep and length <= MAX_BODY
        else:  # the body ends with the connection
            body = await reader.read(MAX_BODY)
            keep = False
        if not keep:
            self.close()
        return Answer(status, body)


class _ClosedBeforeAnswer(Exception):
    """The connection ended before the status line of the answer."""


async def _chunks(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """A chunked body, and whether it was read to its end (it is not beyond MAX_BODY)."""
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body), True
        if len(body) + size > MAX_BODY:
            return bytes(body), False
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # CRLF
