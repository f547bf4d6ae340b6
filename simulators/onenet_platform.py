"""China Mobile's OneNET Studio as it pushes to the gateway: a push instance, byte for byte.

It verifies the instance with the signed GET (the gateway must echo `msg`), then pushes
each message as {msg, nonce, signature, time, id}, signed Base64(MD5(token + nonce + msg))
and, in secure mode, with msg encrypted AES-CBC under the instance's 16-character key. A
push not answered 200 within `timeout_s` is pushed again with the same id, on OneNET's
published schedule (5 s, 10 s, 30 s, ... 1 h: 16 retries) scaled by `retry_scale`.

    python -m simulators.onenet_platform http://127.0.0.1:8080/onenet <token> \
        --device-name smoke-0001 --product-id 0AbCdEf --params '{"smoke_state": 1}'
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from drivers.onenet.signature import NONCE_CHARS, encrypt, sign
from simulators.pushing_platform import Delivery, PushingPlatform, now_ms

# seconds between a push and each retry (OneNET Studio, 数据推送 "重推策略")
SCHEDULE_S = (5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600)
_ALPHABET = string.ascii_letters + string.digits
_ids = itertools.count(3_799_902)


def _nonce() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(NONCE_CHARS))


class OneNetPlatform(PushingPlatform):
    """Pushes to one push instance's URL; use as `async with`."""

    def __init__(self, url: str, token: str, aes_key: str | None = None, *,
                 project_id: str = "990909090", timeout_s: float = 5.0,
                 retry_scale: float = 1.0, retries: int = len(SCHEDULE_S),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(url, timeout_s, retries, sleep)
        self.token = token
        self.aes_key = aes_key
        self.project_id = project_id
        self.retry_scale = retry_scale

    # -- messages, as the rule engine forwards them ("消息源格式") --------------------------

    def property_notify(self, product_id: str, device_name: str, params: Mapping[str, Any],
                        *, imei: str | None = None, at_ms: int | None = None) -> dict[str, Any]:
        at = now_ms() if at_ms is None else at_ms
        message: dict[str, Any] = {
            "projectId": self.project_id, "productId": product_id, "deviceName": device_name,
            "messageType": "notify", "notifyType": "property",
            "data": {"id": str(next(_ids)),
                     "params": {k: {"value": v, "time": at} for k, v in params.items()}}}
        if imei is not None:
            message["imei"] = imei
        return message

    def life_cycle(self, product_id: str, device_name: str, online: bool,
                   *, at_ms: int | None = None) -> dict[str, Any]:
        return {"projectId": self.project_id, "productId": product_id,
                "deviceName": device_name, "messageType": "lifeCycle",
                "data": {"status": "online" if online else "offline",
                         "time": now_ms() if at_ms is None else at_ms}}

    # -- the wire --------------------------------------------------------------------------

    def envelope(self, message: Mapping[str, Any] | str, msg_id: str | None = None, *,
                 token: str | None = None) -> bytes:
        """The body of one push (`token`: sign with another token, as a forger would)."""
        text = message if isinstance(message, str) else json.dumps(message,
                                                                    separators=(",", ":"))
        msg = encrypt(self.aes_key, text) if self.aes_key is not None else text
        nonce = _nonce()
        return json.dumps({"msg": msg, "nonce": nonce,
                           "signature": sign(token or self.token, nonce, msg),
                           "time": now_ms(), "id": msg_id or str(next(_ids))}).encode()

    async def verify(self, *, token: str | None = None) -> tuple[int, str]:
        """The instance verification GET: (status, body); verified when body == msg."""
        session = self._open()
        msg = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        nonce = _nonce()
        params = {"msg": msg, "nonce": nonce, "signature": sign(token or self.token, nonce, msg)}
        async with session.get(self.url, params=params) as response:
            return response.status, await response.text()

    async def push(self, message: Mapping[str, Any] | str,
                   msg_id: str | None = None) -> Delivery:
        """Push until answered 200 or the schedule runs out, always with the same id."""
        ident = msg_id or str(next(_ids))
        body = self.envelope(message, ident)
        pauses = (delay * self.retry_scale for delay in SCHEDULE_S[:self.retries])
        return await self._deliver(ident, body, pauses)


async def _main(args: argparse.Namespace) -> None:
    async with OneNetPlatform(args.url, args.token, args.aes_key) as platform:
        status, body = await platform.verify()
        print(f"verification: {status} {'ok' if status == 200 else body}")
        message = platform.property_notify(args.product_id, args.device_name,
                                           json.loads(args.params))
        print(await platform.push(message))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--aes-key")
    parser.add_argument("--product-id", default="0AbCdEf")
    parser.add_argument("--device-name", required=True)
    parser.add_argument("--params", default="{}", help="JSON object of identifier: value")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
