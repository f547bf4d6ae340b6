"""The console over TLS: a certificate the compound's CA issued, session cookies Secure."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from gateway.ops.private_servers import Mosquitto, free_port
from gateway.supervisor import Gateway
from tests.console.rig import OFFICER, PASSWORD, add_user
from tests.helpers import elder_gpio, eventually, make_config, running, unique_site
from tests.pki import issue, make_ca


async def test_the_console_over_tls_sets_secure_cookies(tmp_path: Path,
                                                        mosquitto: Mosquitto) -> None:
    ca, _ = make_ca(tmp_path / "ca", "compound CA")
    cert, key = issue(tmp_path / "ca", "console", "gateway", "DNS:localhost,IP:127.0.0.1")
    port = free_port()
    config = make_config(tmp_path, site=unique_site("tls"), broker_port=mosquitto.port,
                         devices=[elder_gpio("elder-1", pin=17)], shutdown_timeout_s=0.3,
                         console={"port": port, "tls": {"cert_file": str(cert),
                                                        "key_file": str(key)}})
    add_user(config, OFFICER)
    trust = ssl.create_default_context(cafile=str(ca))
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.console.ready.is_set(), what="console")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust),
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            base = f"https://127.0.0.1:{port}"
            async with session.post(base + "/login", allow_redirects=False, data={
                    "name": OFFICER, "password": PASSWORD,
                    "csrf": await _login_token(session, base)}) as response:
                assert response.status == 303
                cookie = response.cookies["scgw_session"]
                assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (
                    True, True, "Strict")
            async with session.get(base + "/api/board") as response:
                assert response.status == 200
            try:
                async with session.get(f"http://127.0.0.1:{port}/login") as response:
                    plain = response.status
            except aiohttp.ClientError:
                plain = None
            assert plain != 200  # no plain HTTP beside it


async def _login_token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(base + "/login") as response:
        assert response.status == 200
        cookie = response.cookies["scgw_login"]
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (
            True, True, "Strict")
        return cookie.value
