"""The store writers' HTTP connection against raw scripted servers: the answers and closed
connections a real store shows only now and then (idle timeouts, chunked errors, garbage),
and a store behind TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from gateway.core.config import StoreConfig
from gateway.ops.private_servers import free_port
from gateway.sinks.store_writer import StoreWriteError, writer_for
from tests.test_doctor import pki  # noqa: F401  # the compound's CA and a server certificate

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
CHUNKED_500 = (b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"6\r\nstore \r\n4\r\nbusy\r\n0\r\n\r\n")


class RawStore:
    """Per connection, a script: for each request read, the bytes to answer, or None to
    close the connection without an answer. Records each request's first line."""

    def __init__(self, scripts: list[list[bytes | None]]) -> None:
        self.scripts = scripts
        self.requests: list[tuple[int, str]] = []  # (connection number, request line)
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        script = self.scripts.pop(0) if self.scripts else [NO_CONTENT] * 100
        try:
            for step in script:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                self.requests.append((number, head.split(b"\r\n")[0].decode()))
                if step is None:
                    break
                writer.write(step)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client went away
        finally:
            writer.close()


@asynccontextmanager
async def raw_store(scripts: list[list[bytes | None]]) -> AsyncIterator[tuple[RawStore, str]]:
    store = RawStore(scripts)
    server = await asyncio.start_server(store.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield store, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def _config(url: str, **extra: object) -> StoreConfig:
    return StoreConfig.model_validate({"url": url, "timeout_s": 2.0, **extra})


async def test_a_kept_connection_the_store_closed_is_replaced_once() -> None:
    # the first connection is closed as the second request arrives (an idle timeout)
    async with raw_store([[NO_CONTENT, None]]) as (store, url):
        writer = writer_for(_config(url + "/influx"), {})
        try:
            await writer.write(["m v=1 1"])
            await writer.write(["m v=2 2"])
            await writer.write(["m v=3 3"])
        finally:
            await writer.close()
    path = "POST /influx/api/v2/write?org=scgw&bucket=scgw&precision=ms HTTP/1.1"
    assert store.requests == [(1, path), (1, path), (2, path), (2, path)]
    assert writer.connections == 2


async def test_a_store_that_closes_a_new_connection_unanswered_is_an_outage() -> None:
    async with raw_store([[None], [None]]) as (store, url):
        writer = writer_for(_config(url), {})
        try:
            with pytest.raises(StoreWriteError) as caught:
                await writer.write(["m v=1 1"])
        finally:
            await writer.close()
    assert caught.value.status is None
    assert caught.value.retryable
    assert "closed the connection without an answer" in str(caught.value)
    assert len(store.requests) == 1  # not sent again on a connection of its own making


async def test_a_chunked_refusal_is_read_whole_and_the_connection_kept() -> None:
    async with raw_store([[CHUNKED_500, NO_CONTENT]]) as (store, url):
        writer = writer_for(_config(url), {})
        try:
            with pytest.raises(StoreWriteError) as caught:
                await writer.write(["m v=1 1"])
            await writer.write(["m v=1 1"])
        finally:
            await writer.close()
    assert caught.value.status == 500
    assert caught.value.retryable
    assert str(caught.value) == "store answered 500: store busy"
    assert writer.connections == store.connections == 1


@pytest.mark.parametrize("answer", [b"SMTP ready\r\n\r\n",
                                    b"HTTP/1.1 204 No Content\r\nno colon here",
                                    b"HTTP/1.1 400 Bad\r\nContent-Length: 10\r\n\r\nshort"])
async def test_a_garbled_answer_is_an_outage_and_the_connection_dropped(answer: bytes) -> None:
    async with raw_store([[answer], [NO_CONTENT]]) as (store, url):
        writer = writer_for(_config(url, timeout_s=0.5), {})
        try:
            with pytest.raises(StoreWriteError) as caught:
                await writer.write(["m v=1 1"])
            await writer.write(["m v=1 1"])
        finally:
            await writer.close()
    assert caught.value.status is None
    assert caught.value.retryable
    assert [number for number, _ in store.requests] == [1, 2]


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "t\u00f6ken\u2603"])
async def test_a_token_a_header_cannot_carry_is_refused_before_sending(token: str) -> None:
    async with raw_store([]) as (store, url):
        writer = writer_for(_config(url, token_env="T"), {"T": token})
        try:
            with pytest.raises(StoreWriteError) as caught:
                await writer.write(["m v=1 1"])
        finally:
            await writer.close()
    assert caught.value.retryable  # the points wait in the journal until it is fixed
    assert "store.token_env" in str(caught.value)
    assert store.requests == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://:8086"])
async def test_an_unusable_url_is_an_outage_that_names_it(url: str) -> None:
    writer = writer_for(_config(url), {})  # the gateway starts; the points wait
    try:
        with pytest.raises(StoreWriteError) as caught:
            await writer.write(["m v=1 1"])
    finally:
        await writer.close()
    assert caught.value.retryable
    assert f"store.url {url!r} is not a usable http(s) URL" in str(caught.value)


async def test_a_store_behind_tls_is_written_when_its_ca_is_trusted(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    bodies: list[str] = []

    async def write(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki["cert"], pki["key"])
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_tls).start()
    try:
        stranger = writer_for(_config(f"https://127.0.0.1:{port}"), {})
        trusted = writer_for(_config(f"https://127.0.0.1:{port}"), {})
        try:
            # the trusted certificates are read when the first connection is made
            monkeypatch.setenv("SSL_CERT_FILE", str(pki["other_ca"]))
            with pytest.raises(StoreWriteError) as caught:
                await stranger.write(["m v=1 1"])
            monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
            await trusted.write(["m v=2 2"])
        finally:
            await stranger.close()
            await trusted.close()
    finally:
        await runner.cleanup()
    assert caught.value.retryable
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert bodies == ["m v=2 2"]


async def test_writes_made_together_take_turns_on_the_connection() -> None:
    async with raw_store([]) as (store, url):
        writer = writer_for(_config(url), {})
        try:
            await asyncio.gather(*(writer.write([f"m v={n} {n}"]) for n in range(5)))
        finally:
            await writer.close()
    assert len(store.requests) == 5
    assert writer.connections == store.connections == 1
