"""A device that pushes JSON over HTTP, built from any json profile.

Values are given per dotted payload path in the units the gateway should read; every other
mapped path takes a harmless default, and the profile's `ignore` paths carry placeholder
personal data, as a real device's payload would. Faults: a wrong token, a body over the
receiver's limit, malformed JSON and an out-of-range value.

It sends its token as a bearer token, or signs each push with it (`auth="signed"`: a
timestamp, a fresh nonce and an HMAC, see `drivers.http_signature`); over https it trusts
the CA in `ca_file` and can present a client certificate.

    PUSH_TOKEN=... python -m simulators.http_pusher http-temp-gate http://127.0.0.1:8080 gate-1
    PUSH_TOKEN=... python -m simulators.http_pusher http-temp-gate https://gw.local:8443 \
        gate-1 --auth signed --ca-file /etc/scgw/ca.crt --cert gate-1.crt --key gate-1.key
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import enum
import os
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp
import msgspec

from drivers.http_signature import NONCE_HEADER, SCHEME, TIMESTAMP_HEADER, sign
from drivers.json_map import JsonMap, JsonReading
from drivers.profile import BUILTIN, Profile, ProfileLibrary
from gateway.core.kinds import MODELS
from simulators.json_device import JsonPayloads
from simulators.serial_device import sample


class PushFault(enum.StrEnum):
    WRONG_TOKEN = "wrong_token"
    OVERSIZED = "oversized"  # a body one byte over max_body_bytes
    MALFORMED_JSON = "malformed_json"
    OUT_OF_RANGE = "out_of_range"  # the first bounded reading just above its range


@dataclass(frozen=True, slots=True)
class PushResult:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Push:
    """One request as the device sends it (sent again as is, it is a replay)."""

    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HttpPusher:
    """Pushes to `{base_url}/push/{device}`; use as `async with`."""

    def __init__(self, profile: Profile, base_url: str, device: str, token: str,
                 *, max_body_bytes: int = 16_384, auth: Literal["bearer", "signed"] = "bearer",
                 ca_file: Path | None = None, client_cert: tuple[Path, Path] | None = None,
                 now_ms: Callable[[], int] = _wall_ms) -> None:
        if not isinstance(profile.mapping, JsonMap):
            raise ValueError(f"profile {profile.name} is not a json profile")
        self.profile = profile
        self.mapping = profile.mapping
        self.device = device
        self.url = f"{base_url.rstrip('/')}/push/{device}"
        self._token = token
        self._max_body_bytes = max_body_bytes
        self._auth = auth
        self._ca_file = ca_file
        self._client_cert = client_cert  # (certificate, key)
        self._now_ms = now_ms
        self._readings = MODELS[profile.kind].readings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpPusher:
        context = await asyncio.to_thread(self._tls) if self.url.startswith("https") else None
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(ssl=context if context is not None else True))
        return self

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self._ca_file) if self._ca_file else None)
        if self._client_cert is not None:
            cert, key = self._client_cert
            context.load_cert_chain(str(cert), str(key))
        return context

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def body(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A payload: defaults for every mapped path, then `values` by dotted path."""
        body: dict[str, Any] = {}
        for r in self.mapping.readings:
            _put(body, r.path, _raw(r, sample(self._readings[r.reading])))
        for e in self.mapping.events:
            current = _get(body, e.path)
            if e.event is not None and current == e.equals:
                _put(body, e.path, _other(e.equals))
            elif e.map and current is None:
                first = next(iter(e.map))
                _put(body, e.path, int(first) if first.isdigit() else first)
        for path in self.mapping.ignore:
            _put(body, path, f"sample {path.rsplit('.', 1)[-1]}")
        for path, value in (values or {}).items():
            reading = next((r for r in self.mapping.readings if r.path == path), None)
            _put(body, path, _raw(reading, value) if reading and _is_number(value) else value)
        return body

    async def push(self, values: Mapping[str, Any] | None = None,
                   *, fault: PushFault | None = None) -> PushResult:
        """POST one payload (with `fault` applied) and return the receiver's answer."""
        return await self.send(self.prepare(values, fault=fault))

    def prepare(self, values: Mapping[str, Any] | None = None,
                *, fault: PushFault | None = None, at_s: int | None = None) -> Push:
        """One push, signed at `at_s` (unix seconds; default: now) if the device signs."""
        body = self.body(values)
        token = self._token
        if fault is PushFault.OUT_OF_RANGE:
            reading = self._bounded_reading()
            high = self._readings[reading.reading].high
            assert high is not None
            _put(body, reading.path, _raw(reading, high + max(1.0, abs(reading.scale))))
        if fault is PushFault.OVERSIZED:
            body["padding"] = "x" * self._max_body_bytes
        data = msgspec.json.encode(body)
        if fault is PushFault.MALFORMED_JSON:
            data = data[:-1]  # the closing brace lost
        if fault is PushFault.WRONG_TOKEN:
            token = token[::-1] + "x"
        return self._request(data, token, at_s)

    async def heartbeat(self) -> PushResult:
        """POST the message the device sends while idle: its profile's `heartbeat` event
        alone, with no reading (a passage's temperature is not repeated)."""
        body = JsonPayloads(self.profile).payload(event="heartbeat")
        return await self.send(self._request(msgspec.json.encode(body), self._token, None))

    def _request(self, data: bytes, token: str, at_s: int | None) -> Push:
        headers = {"Content-Type": "application/json"}
        if self._auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
            return Push(data, headers)
        timestamp = self._now_ms() // 1000 if at_s is None else at_s
        nonce = secrets.token_urlsafe(18)  # 24 characters
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[NONCE_HEADER] = nonce
        signature = sign(token.encode(), timestamp, nonce, self.device, data)
        headers["Authorization"] = f"{SCHEME} {signature}"
        return Push(data, headers)

    async def send(self, push: Push) -> PushResult:
        """POST `push` as it is and return the receiver's answer."""
        if self._session is None:
            raise RuntimeError("use HttpPusher as `async with`")
        async with self._session.post(self.url, data=push.data,
                                      headers=push.headers) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = {}
            return PushResult(response.status, answer if isinstance(answer, dict) else {})

    def _bounded_reading(self) -> JsonReading:
        for r in self.mapping.readings:
            if self._readings[r.reading].high is not None:
                return r
        raise ValueError(f"profile {self.profile.name} has no bounded reading")


def _raw(reading: JsonReading | None, value: float) -> int | float:
    """The payload number that the gateway reads as `value`."""
    if reading is None:
        return value
    raw = (value - reading.offset) / reading.scale
    return round(raw) if abs(raw - round(raw)) < 1e-6 else raw


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _other(value: object) -> object:
    """A value of the same kind that is not `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return 1 if value == 0 else 0
    return None


def _get(body: dict[str, Any], path: str) -> Any:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)


async def _main(pusher: HttpPusher, every: float) -> None:
    async with pusher:
        while True:
            result = await pusher.push()
            print(result.status, result.body)
            await asyncio.sleep(every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profile")
    parser.add_argument("base_url")
    parser.add_argument("device")
    parser.add_argument("--token-env", default="PUSH_TOKEN",
                        help="environment variable holding the device's token")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between pushes")
    parser.add_argument("--auth", choices=("bearer", "signed"), default="bearer",
                        help="send the token, or sign each push with it")
    parser.add_argument("--ca-file", type=Path, help="https: the CA the gateway's "
                        "certificate is checked against (default: the system's)")
    parser.add_argument("--cert", type=Path, help="https: the device's client certificate")
    parser.add_argument("--key", type=Path, help="https: the key of --cert")
    args = parser.parse_args()
    token = os.environ.get(args.token_env)
    if not token:
        parser.error(f"set {args.token_env} to the device's token")
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    profile = ProfileLibrary([BUILTIN]).get(args.profile)
    pusher = HttpPusher(profile, args.base_url, args.device, token, auth=args.auth,
                        ca_file=args.ca_file,
                        client_cert=(args.cert, args.key) if args.cert else None)
    asyncio.run(_main(pusher, args.every))


if __name__ == "__main__":
    main()
