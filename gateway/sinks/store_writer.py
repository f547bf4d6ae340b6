"""Writing line protocol to a time-series store: the InfluxDB v2 write API or 1.x `/write`.

Both are one HTTP POST of line protocol per batch (`gateway/sinks/store_http.py`).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Protocol

from gateway.core.config import StoreConfig
from gateway.sinks.store_http import StoreConnection

# 400 and 422: the store parsed the batch and refuses it; sending it again cannot help
_REJECTED = {400, 422}


class StoreWriteError(Exception):
    """A write did not get a 2xx answer."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class Writer(Protocol):
    """One batch of line protocol per call; raises StoreWriteError on anything but 2xx."""

    @property
    def connections(self) -> int:
        """Connections opened to the store so far: a new one may mean it restarted."""
        ...

    async def write(self, lines: list[str]) -> None: ...

    async def close(self) -> None: ...


def writer_for(config: StoreConfig, env: Mapping[str, str]) -> Writer:
    """The writer for the configured API, its secret read from `env`."""
    if config.api == "v1":
        password = env.get(config.password_env, "") if config.password_env else ""
        return InfluxV1Writer(config, password)
    token = env.get(config.token_env, "") if config.token_env else ""
    return InfluxWriter(config, token)


class _LinePoster:
    """POSTs batches of line protocol to one endpoint of the store."""

    def __init__(self, config: StoreConfig, path: str, params: dict[str, str],
                 headers: dict[str, str], secret_key: str) -> None:
        self._config = config
        self._path = path
        self._params = params
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        # a line break would end the header early, and HTTP headers carry latin-1 only:
        # such a secret is refused before anything is sent
        self._bad_secret = not all(
            value.isprintable() and _latin1(value) for value in headers.values())
        self._secret_key = secret_key
        self._connection = StoreConnection(config.url)

    @property
    def connections(self) -> int:
        return self._connection.opened

    def _hint(self, status: int) -> str:
        """What to do about a refusal, appended to its message."""
        return ""

    async def write(self, lines: list[str]) -> None:
        if self._bad_secret:
            raise StoreWriteError(f"the secret in {self._secret_key} holds a line break or a "
                                  "character an HTTP header cannot carry",
                                  status=None, retryable=True)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                answer = await self._connection.post(
                    self._path, self._params, self._headers, "\n".join(lines).encode())
        except (TimeoutError, OSError) as exc:
            raise StoreWriteError(
                f"store unreachable: {type(exc).__name__}: {exc}", status=None, retryable=True
            ) from exc
        if 200 <= answer.status < 300:
            return
        text = answer.body[:200].decode("utf-8", "replace").strip()
        raise StoreWriteError(
            f"store answered {answer.status}: {text}{self._hint(answer.status)}",
            status=answer.status, retryable=answer.status not in _REJECTED)

    async def close(self) -> None:
        await self._connection.aclose()


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class InfluxWriter(_LinePoster):
    """The InfluxDB v2 write API (`/api/v2/write`): InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics.

    As with 1.x, 401/403 and 404 (no such bucket or org) are retried like an outage.
    """

    def __init__(self, config: StoreConfig, token: str) -> None:
        super().__init__(
            config, "/api/v2/write",
            {"org": config.org, "bucket": config.bucket, "precision": "ms"},
            {"Authorization": f"Token {token}"} if token else {}, "store.token_env")

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return " (check the token in store.token_env)"
        return ""


class InfluxV1Writer(_LinePoster):
    """The InfluxDB 1.x `/write` endpoint (Debian's `influxdb`), same line protocol.

    A 404 (database not found) and 401/403 are retried like an outage: the points stay in
    the journal until someone creates the database or fixes the credentials.
    """

    def __init__(self, config: StoreConfig, password: str) -> None:
        params = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        headers: dict[str, str] = {}
        if config.username:
            credentials = base64.b64encode(f"{config.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {credentials}"
        super().__init__(config, "/write", params, headers, "store.password_env")

    def _hint(self, status: int) -> str:
        if status == 404:
            return (f" (create it: influx -execute "
                    f"'CREATE DATABASE \"{self._config.database}\"')")
        if status in (401, 403):
            return " (check store.username and the password in store.password_env)"
        return ""
