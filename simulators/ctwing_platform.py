"""China Telecom's CTWing (AEP) as it pushes a subscription to the gateway, byte for byte.

Each uplink is POSTed as the platform's JSON message (dataReport, eventReport,
deviceOnlineOfflineReport) to the subscription URL; an answer other than 200 within
`timeout_s` makes it push the same message again, up to 3 times (CTWing's documented
retry count), `retry_s` apart. CTWing signs nothing: the secret is in the URL.

    python -m simulators.ctwing_platform http://127.0.0.1:8080/ctwing/<token> \
        --device-id 40edca19b0124480864366de4621de99 --appdata 6801...16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from simulators.pushing_platform import Delivery, PushingPlatform, now_ms

RETRIES = 3
_packets = itertools.count(1)


class CtwingPlatform(PushingPlatform):
    """Pushes to one subscription URL (`{base}{path}/{token}`); use as `async with`."""

    def __init__(self, url: str, *, tenant_id: str = "2000033827", product_id: str = "15045240",
                 timeout_s: float = 5.0, retry_s: float = 1.0, retries: int = RETRIES,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(url, timeout_s, retries, sleep)
        self.tenant_id = tenant_id
        self.product_id = product_id
        self.retry_s = retry_s

    # -- messages (订阅推送 消息格式) --------------------------------------------------------

    def data_report(self, device_id: str, payload: Mapping[str, Any], *,
                    imei: str = "", packet: int | None = None,
                    protocol: str = "lwm2m") -> dict[str, Any]:
        """`packet`: the upPacketSN (and upDataSN) of the uplink; None numbers it anew."""
        sn = next(_packets) if packet is None else packet
        return {"upPacketSN": sn, "upDataSN": sn, "topic": "v1/up/ad",
                "timestamp": now_ms(), "tenantId": self.tenant_id, "serviceId": "",
                "protocol": protocol, "productId": self.product_id, "payload": dict(payload),
                "messageType": "dataReport", "deviceType": "", "deviceId": device_id,
                "assocAssetId": "", "IMSI": "undefined", "IMEI": imei or "undefined"}

    def app_data_report(self, device_id: str, data: bytes, **kw: Any) -> dict[str, Any]:
        """A pass-through device's bytes, Base64 in payload.APPdata."""
        return self.data_report(device_id, {"APPdata": base64.b64encode(data).decode()}, **kw)

    def event_report(self, device_id: str, event_type: int, content: Mapping[str, Any], *,
                     imei: str = "", service_id: int = 1002) -> dict[str, Any]:
        return {"timestamp": now_ms(), "tenantId": self.tenant_id, "serviceId": service_id,
                "protocol": "lwm2m", "productId": self.product_id,
                "messageType": "eventReport", "eventType": event_type,
                "eventContent": dict(content), "deviceSn": "", "deviceId": device_id,
                "IMSI": "undefined", "IMEI": imei or "undefined"}

    def online_offline(self, device_id: str, online: bool) -> dict[str, Any]:
        return {"timestamp": now_ms(), "tenantId": self.tenant_id, "protocol": "lwm2m",
                "productId": self.product_id, "messageType": "deviceOnlineOfflineReport",
                "iccid": "undefined", "eventType": 1 if online else 0, "deviceId": device_id}

    # -- the wire --------------------------------------------------------------------------

    async def push(self, message: Mapping[str, Any]) -> Delivery:
        """Push until answered 200 or the retries run out, the same message each time."""
        body = json.dumps(message, separators=(",", ":")).encode()
        return await self._deliver(str(message.get("upPacketSN", message.get("timestamp"))),
                                   body, [self.retry_s] * self.retries)


async def _main(args: argparse.Namespace) -> None:
    async with CtwingPlatform(args.url) as platform:
        if args.appdata:
            message = platform.app_data_report(args.device_id, bytes.fromhex(args.appdata))
        else:
            message = platform.data_report(args.device_id, json.loads(args.payload))
        print(await platform.push(message))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="the subscription URL, token included")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--appdata", help="a pass-through device's bytes, in hex")
    parser.add_argument("--payload", default="{}", help="the payload JSON of a profile device")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
