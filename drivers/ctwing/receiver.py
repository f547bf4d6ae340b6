"""The CTWing subscription's endpoint on the HTTP push port: `POST {path}/{token}`.

CTWing signs no push, so the subscription URL carries a secret: a push to any other token
is refused with 403 and counted (`rejected{device="ctwing", reason="bad_token"}`). A
`dataReport` is decoded by the device's profile: a json profile reads the message
(`payload.serviceData...`, `payload...`), a byte-layout profile reads the `APPdata` of a
pass-through device; an `eventReport` is read by a json profile; a
`deviceOnlineOfflineReport` offline takes the device offline at once. A repeat of the same
upPacketSN/upDataSN (or, where the protocol has none, of the same message) is journalled
once. Anything authentic the gateway has no use for is answered 200 and counted.
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web

from drivers.ctwing.appdata import AppData
from drivers.ctwing.message import (
    DeviceName,
    MalformedPushError,
    OnlineOffline,
    Other,
    Uplink,
    parse_message,
)
from drivers.json_map import Decoded, JsonMap, JsonMapper
from drivers.platform_push import answer
from drivers.platform_receiver import PlatformReceiver
from drivers.profile import Profile
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames import SerialFormat
from gateway.core.clock import Clock
from gateway.core.config import CtwingConfig, CtwingDevice
from gateway.core.counters import Counters
from gateway.core.journaling import ReceiptBook

log = logging.getLogger(__name__)

LABEL = "ctwing"  # the `device` label of what cannot be told apart by device


class CtwingReceiver(PlatformReceiver[JsonMapper | AppData]):
    def __init__(self, config: CtwingConfig, devices: list[tuple[CtwingDevice, Profile]],
                 clock: Clock, counters: Counters, receipts: ReceiptBook | None = None,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        super().__init__("CTWing", LABEL, log, config.redelivery_window_s, clock, counters,
                         receipts)
        self._config = config
        self._token = config.token.encode()
        self._kinds = frozenset(device.kind for device, _ in devices)
        self._by_id: dict[str, str] = {}
        self._by_imei: dict[str, str] = {}
        for device, profile in devices:
            if isinstance(profile.mapping, JsonMap):
                self._decoders[device.id] = JsonMapper(profile.mapping, device.kind, device.id,
                                                       pseudonymise)
            elif isinstance(profile.mapping, SerialFormat):
                self._decoders[device.id] = AppData(profile.mapping, device.kind, device.id,
                                                    pseudonymise)
            else:
                raise ValueError(f"{device.id}: profile {profile.name} is neither a json nor "
                                 "a byte-layout (serial) profile")
            if device.ctwing.device_id is not None:
                self._by_id[device.ctwing.device_id] = device.id
            if device.ctwing.imei is not None:
                self._by_imei[device.ctwing.imei] = device.id

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(self._config.path.rstrip("/") + "/{token}", self._push)

    def find(self, device: DeviceName) -> str | None:
        if device.device_id is not None and device.device_id in self._by_id:
            return self._by_id[device.device_id]
        return self._by_imei.get(device.imei) if device.imei is not None else None

    async def _push(self, request: web.Request) -> web.Response:
        given = request.match_info["token"].encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._token):
            # the path may hold another secret: never log it
            return self._refuse(403, "bad_token", "push to a subscription URL with a wrong "
                                "token")
        # authenticated by its URL, but which device it is for is in the body: the slot of
        # any of the platform's devices, an alarm's when one of them calls for help
        body = await self._body(request, self._kinds)
        if isinstance(body, web.Response):
            return body
        try:
            message = parse_message(body)
        except MalformedPushError as exc:
            return self._refuse(400, "malformed_push", str(exc))
        if isinstance(message, Other):
            return self._ignored(message)
        device = self.find(message.device)
        if device is None:
            return self._unknown("push", message.device)
        async with self.uplinks.lock(device):
            if isinstance(message, OnlineOffline):
                self._online(device, message.online)
                return answer(200, accepted=[])
            receipt = self.uplinks.receipt(_key(message), _content(message))
            if receipt is None:
                return self.uplinks.again(device)
            return await self._deliver(device, self._decode(device, message), receipt)

    def _decode(self, device: str, uplink: Uplink) -> Decoded:
        decoder = self._decoders[device]
        now = self._clock.now_ms()
        if isinstance(decoder, JsonMapper):
            decoded = decoder.decode(uplink.body, now)
            if uplink.app_data is not None and decoded.reading is None and not decoded.events:
                decoded.problems.append(("no_layout", "APPdata of a pass-through device, but "
                                         "its profile is a json profile: give it a byte-layout "
                                         "(serial) profile"))
            return decoded
        if uplink.app_data is None:
            out = Decoded()
            if uplink.message_type == "dataReport":
                out.problems.append(("no_appdata", "a dataReport without APPdata, but the "
                                     "profile is a byte layout: give it a json profile"))
            return out  # an eventReport of a pass-through device: alive, nothing to map
        return decoder.decode(uplink.app_data, now)


def _key(uplink: Uplink) -> str:
    ident = uplink.device.device_id or uplink.device.imei
    if uplink.packet is not None and uplink.message_type == "dataReport":
        return f"{ident}:{uplink.packet}"
    return f"{ident}:{uplink.message_type}:{uplink.timestamp}"


def _content(uplink: Uplink) -> bytes:
    return json.dumps(uplink.body, sort_keys=True, separators=(",", ":")).encode()
