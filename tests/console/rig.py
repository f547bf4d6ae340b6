"""A gateway with its console, and its accounts, for the console's tests."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from gateway.console.accounts import Accounts, Role, users_path
from gateway.core.config import GatewayConfig
from gateway.ops.private_servers import free_port
from tests.helpers import elder_gpio, make_config

OFFICER = "wang"
VIEWER = "li"
PASSWORD = "correct-horse-9"


def console_config(tmp_path: Path, *, site: str, broker_port: int, store_url: str,
                   **extra: Any) -> GatewayConfig:
    return make_config(tmp_path, site=site, broker_port=broker_port, store_url=store_url,
                       devices=[elder_gpio("elder-1", pin=17, led_pin=27)],
                       console={"port": free_port()}, shutdown_timeout_s=0.3, **extra)


def base_url(config: GatewayConfig) -> str:
    assert config.console is not None
    return f"http://127.0.0.1:{config.console.port}"


def add_user(config: GatewayConfig, name: str, role: Role = Role.OFFICER,
             password: str = PASSWORD, language: str | None = None) -> None:
    Accounts(users_path(config)).add(name, role, password, language)


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep the cookies of an IP address (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def login(session: aiohttp.ClientSession, base: str, name: str,
                password: str = PASSWORD) -> int:
    """Post the login form as a browser does; the answer's status."""
    async with session.get(base + "/login") as response:
        form = await response.text()
    found = re.search(r'name="csrf" value="([^"]+)"', form)
    assert found is not None, form
    async with session.post(base + "/login", allow_redirects=False, data={
            "name": name, "password": password, "csrf": found.group(1)}) as response:
        return response.status


async def csrf_token(session: aiohttp.ClientSession, base: str) -> str:
    """The session's CSRF token, as the board page carries it."""
    async with session.get(base + "/") as response:
        assert response.status == 200
        page = await response.text()
    found = re.search(r'data-csrf="([^"]+)"', page)
    assert found is not None
    return found.group(1)
