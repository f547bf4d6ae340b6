"""An upstream that takes HTTPS POSTs of JSON batches.

Each batch is signed: `X-Scgw-Signature: sha256=<hex>` is HMAC-SHA256, with the upstream's
secret, over `<timestamp>.<body>`, and `X-Scgw-Timestamp` is that timestamp (epoch
seconds), so a receiver refuses a body changed on the way and a request replayed later
than its window. A 2xx answer confirms the whole batch; anything else is a failed delivery,
tried again with the same records and ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import Sequence

import aiohttp

from gateway.core.upstream_config import WebhookUpstream
from gateway.upstreams.transport import Parcel, Setting, TransportDown

SIGNATURE_HEADER = "X-Scgw-Signature"
TIMESTAMP_HEADER = "X-Scgw-Timestamp"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """What `X-Scgw-Signature` carries for `body` sent at `timestamp`."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def batch_body(site: str, parcels: Sequence[Parcel]) -> bytes:
    """`{"site": ..., "records": [...]}`: the parcels' payloads in delivery order."""
    head = json.dumps({"site": site}, separators=(",", ":")).encode()[:-1]
    return head + b',"records":[' + b",".join(p.payload for p in parcels) + b"]}"


class WebhookTransport:
    def __init__(self, config: WebhookUpstream, setting: Setting) -> None:
        self._config = config
        self._site = setting.site
        self._clock = setting.clock
        self._secret = setting.env[config.secret_env].encode()
        self._tls = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                connector=aiohttp.TCPConnector(ssl=self._tls, limit=1))

    async def deliver(self, parcels: Sequence[Parcel]) -> None:
        session = self._session
        if session is None:
            raise TransportDown("not_open")
        body = batch_body(self._site, parcels)
        timestamp = str(self._clock.now_ms() // 1000)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: signature(self._secret, timestamp, body)}
        try:
            async with session.post(self._config.url, data=body, headers=headers) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise TransportDown(f"http_{response.status}", response.reason or "")
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportDown("unreachable", str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await session.close()
