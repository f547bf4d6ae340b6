"""Writing line protocol to a time-series store: the InfluxDB v2 write API or 1.x `/write`.

Both are one HTTP POST of line protocol per batch, made with aiohttp.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Protocol

import aiohttp

from gateway.config import StoreConfig

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
    """POSTs batches of line protocol to one endpoint over a session of its own, counting
    the connections the session opens (its trace hooks)."""

    def __init__(self, config: StoreConfig, path: str, params: dict[str, str],
                 headers: dict[str, str]) -> None:
        self._config = config
        self._url = config.url.rstrip("/") + path
        self._params = params
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        self._session: aiohttp.ClientSession | None = None
        self._trace = aiohttp.TraceConfig()
        self._trace.on_connection_create_end.append(self._opened)
        self.connections = 0

    async def _opened(self, session: aiohttp.ClientSession, context: object,
                      params: aiohttp.TraceConnectionCreateEndParams) -> None:
        self.connections += 1

    def _hint(self, status: int) -> str:
        """What to do about a refusal, appended to its message."""
        return ""

    async def write(self, lines: list[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                headers=self._headers, trace_configs=[self._trace])
        try:
            async with self._session.post(self._url, params=self._params,
                                          data="\n".join(lines).encode()) as resp:
                if 200 <= resp.status < 300:
                    return
                text = (await resp.text(errors="replace"))[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreWriteError(
                f"store unreachable: {type(exc).__name__}: {exc}", status=None, retryable=True
            ) from exc
        raise StoreWriteError(
            f"store answered {resp.status}: {text.strip()}{self._hint(resp.status)}",
            status=resp.status, retryable=resp.status not in _REJECTED)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxWriter(_LinePoster):
    """The InfluxDB v2 write API (`/api/v2/write`): InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics.

    As with 1.x, 401/403 and 404 (no such bucket or org) are retried like an outage.
    """

    def __init__(self, config: StoreConfig, token: str) -> None:
        super().__init__(
            config, "/api/v2/write",
            {"org": config.org, "bucket": config.bucket, "precision": "ms"},
            {"Authorization": f"Token {token}"} if token else {})

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
        super().__init__(config, "/write", params, headers)

    def _hint(self, status: int) -> str:
        if status == 404:
            return (f" (create it: influx -execute "
                    f"'CREATE DATABASE \"{self._config.database}\"')")
        if status in (401, 403):
            return " (check store.username and the password in store.password_env)"
        return ""
