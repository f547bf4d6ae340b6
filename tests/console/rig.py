"""A gateway with its console, and its accounts, for the console's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
