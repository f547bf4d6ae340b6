"""Writing line protocol to a time-series store: the InfluxDB v2 write API or 1.x `/write`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

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


class _Connections:
    """Counts the connections an aiohttp session opens (its trace hooks)."""

    def __init__(self) -> None:
        self.opened = 0
        self.trace = aiohttp.TraceConfig()
        self.trace.on_connection_create_end.append(self._opened)

    async def _opened(self, session: aiohttp.ClientSession, context: object,
                      params: aiohttp.TraceConnectionCreateEndParams) -> None:
        self.opened += 1

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        """An aiohttp session counted here (influxdb-client's `client_session_type`)."""
        traces = [*(kwargs.pop("trace_configs", None) or ()), self.trace]
        return aiohttp.ClientSession(trace_configs=traces, **kwargs)


def writer_for(config: StoreConfig, env: Mapping[str, str]) -> Writer:
    """The writer for the configured API, its secret read from `env`."""
    if config.api == "v1":
        password = env.get(config.password_env, "") if config.password_env else ""
        return InfluxV1Writer(config, password)
    token = env.get(config.token_env, "") if config.token_env else ""
    return InfluxWriter(config, token)


class InfluxWriter:
    """The InfluxDB v2 write API (`/api/v2/write`) through influxdb-client."""

    def __init__(self, config: StoreConfig, token: str) -> None:
        self._config = config
        self._token = token
        self._influx: InfluxDBClientAsync | None = None
        self._connections = _Connections()

    @property
    def connections(self) -> int:
        return self._connections.opened

    async def write(self, lines: list[str]) -> None:
        if self._influx is None:
            self._influx = InfluxDBClientAsync(
                url=self._config.url,
                token=self._token,
                org=self._config.org,
                timeout=int(self._config.timeout_s * 1000),
                client_session_type=self._connections.session,
            )
        try:
            await self._influx.write_api().write(
                bucket=self._config.bucket, org=self._config.org, record=lines,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # its stub says str
            )
        except ApiException as exc:
            status = int(exc.status) if exc.status is not None else None
            raise StoreWriteError(
                f"store answered {status} {exc.reason}: {_body(exc)}",
                status=status,
                retryable=status not in _REJECTED,
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreWriteError(
                f"store unreachable: {type(exc).__name__}: {exc}", status=None, retryable=True
            ) from exc

    async def close(self) -> None:
        if self._influx is not None:
            await self._influx.close()  # type: ignore[no-untyped-call]
            self._influx = None


class InfluxV1Writer:
    """The InfluxDB 1.x `/write` endpoint (Debian's `influxdb`), same line protocol.

    A 404 (database not found) and 401/403 are retried like an outage: the points stay in
    the journal until someone creates the database or fixes the credentials.
    """

    def __init__(self, config: StoreConfig, password: str) -> None:
        self._config = config
        self._url = config.url.rstrip("/") + "/write"
        self._params = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            self._params["rp"] = config.retention_policy
        self._headers: dict[str, str] = {}
        if config.username:
            credentials = base64.b64encode(f"{config.username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {credentials}"
        self._session: aiohttp.ClientSession | None = None
        self._connections = _Connections()

    @property
    def connections(self) -> int:
        return self._connections.opened

    async def write(self, lines: list[str]) -> None:
        if self._session is None:
            self._session = self._connections.session(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                headers=self._headers)
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
        hint = ""
        if resp.status == 404:
            hint = (f" (create it: influx -execute 'CREATE DATABASE \"{self._config.database}\"')")
        elif resp.status in (401, 403):
            hint = " (check store.username and the password in store.password_env)"
        raise StoreWriteError(f"store answered {resp.status}: {text.strip()}{hint}",
                              status=resp.status, retryable=resp.status not in _REJECTED)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _body(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return str(body or "")[:200]
