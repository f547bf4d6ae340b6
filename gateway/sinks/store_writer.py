"""Writing line protocol to a time-series store through the InfluxDB v2 write API."""

from __future__ import annotations

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


class InfluxWriter:
    """One batch per call; raises StoreWriteError on anything but 2xx."""

    def __init__(self, config: StoreConfig, token: str) -> None:
        self._config = config
        self._token = token
        self._client: InfluxDBClientAsync | None = None

    async def write(self, lines: list[str]) -> None:
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self._config.url,
                token=self._token,
                org=self._config.org,
                timeout=int(self._config.timeout_s * 1000),
            )
        try:
            await self._client.write_api().write(
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
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client = None


def _body(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return str(body or "")[:200]
