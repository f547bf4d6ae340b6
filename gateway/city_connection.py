"""A connection to the city's NATS cluster, for a compound's upstream and for the city hub.

The client reconnects by itself, to any server of the list, for as long as it runs: a node
lost is a failover, not an outage. TLS and credentials come from the configuration's files
and the environment.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from gateway.core.city import NatsAccess

log = logging.getLogger(__name__)


class CityAccessError(Exception):
    """The access cannot be used as configured (a secret is missing); names the key."""


def connect_options(access: NatsAccess, env: Mapping[str, str]) -> dict[str, Any]:
    """`nats.connect`'s keyword arguments for `access`, secrets read from `env`."""
    options: dict[str, Any] = {
        "servers": list(access.servers),
        "connect_timeout": access.connect_timeout_s,
        "reconnect_time_wait": access.reconnect_wait_s,
        "max_reconnect_attempts": -1,  # forever: the cluster comes back
        "allow_reconnect": True,
    }
    secrets: dict[str, str] = {}
    for key, variable in access.secrets().items():
        value = env.get(variable)
        if not value:
            raise CityAccessError(f"nats.{key}: the environment variable {variable} is not set")
        secrets[key] = value
    if access.user is not None:
        options["user"] = access.user
        options["password"] = secrets.get("password_env", "")
    if "token_env" in secrets:
        options["token"] = secrets["token_env"]
    if "nkey_seed_env" in secrets:
        options["nkeys_seed_str"] = secrets["nkey_seed_env"]
    if "credentials_env" in secrets:
        options["user_credentials"] = secrets["credentials_env"]
    return options


def _tls(access: NatsAccess) -> ssl.SSLContext | None:
    tls = access.tls
    if tls is None and not any(s.startswith("tls://") for s in access.servers):
        return None
    context = ssl.create_default_context(
        cafile=str(tls.ca_file) if tls is not None and tls.ca_file else None)
    if tls is not None and tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


async def connect(access: NatsAccess, env: Mapping[str, str], name: str) -> Client:
    """A connected client; raises CityAccessError, or OSError/nats errors when no server of
    the list answers at first (later losses are reconnected by the client)."""
    options = connect_options(access, env)
    # reads certificates from disk: not on the event loop
    options["tls"] = await asyncio.to_thread(_tls, access)
    client = Client()

    async def disconnected() -> None:
        if not (client.is_closed or client.is_draining):  # not our own close
            log.warning("%s: disconnected from the city's NATS cluster", name)

    async def reconnected() -> None:
        log.info("%s: reconnected to the city's NATS cluster", name)

    async def error(exc: Exception) -> None:
        log.debug("%s: NATS: %s", name, exc)

    await client.connect(name=name, disconnected_cb=disconnected,
                         reconnected_cb=reconnected, error_cb=error, **options)
    return client


def cancelling() -> bool:
    """Whether the running task was asked to stop. The NATS client may turn a cancellation
    that meets one of its own timeouts into a TimeoutError: whoever catches that checks
    here first, and lets the cancellation through."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
