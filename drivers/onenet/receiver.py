"""The OneNET push instance's endpoint on the HTTP push port.

`GET {path}?msg=&nonce=&signature=` is the instance verification (实例验证): the gateway
answers `msg` itself only when the signature proves the token. `POST {path}` is a push:
refused with 403 (counted `rejected{device="onenet", reason="bad_signature"}`) unless signed
with the token, decrypted with `aes_key` in secure mode, then decoded by the device's json
profile; `lifeCycle` offline takes the device offline at once. Anything authentic the
gateway has no use for (another message type, a device it does not know) is answered 200
and counted: any other answer makes the platform push it 16 times more.
"""

from __future__ import annotations

import logging

from aiohttp import web

from drivers.json_map import JsonMap, JsonMapper
from drivers.onenet.message import (
    Device,
    LifeCycle,
    MalformedPushError,
    Notify,
    Other,
    parse_envelope,
    parse_message,
)
from drivers.onenet.signature import UndecryptableError, decrypt, verify
from drivers.platform_push import answer
from drivers.platform_receiver import PlatformReceiver
from drivers.profile import Profile
from drivers.pseudonym import Pseudonymiser
from gateway.core.clock import Clock
from gateway.core.config import OneNetConfig, OneNetDevice
from gateway.core.counters import Counters
from gateway.core.journaling import ReceiptBook

log = logging.getLogger(__name__)

LABEL = "onenet"  # the `device` label of what cannot be told apart by device


class OneNetReceiver(PlatformReceiver[JsonMapper]):
    def __init__(self, config: OneNetConfig, devices: list[tuple[OneNetDevice, Profile]],
                 clock: Clock, counters: Counters, receipts: ReceiptBook | None = None,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        super().__init__("OneNET", LABEL, log, config.redelivery_window_s, clock, counters,
                         receipts)
        self._config = config
        self._by_imei: dict[str, str] = {}
        self._by_name: dict[tuple[str | None, str], str] = {}
        for device, profile in devices:
            if not isinstance(profile.mapping, JsonMap):
                raise ValueError(f"{device.id}: profile {profile.name} is not a json profile")
            self._decoders[device.id] = JsonMapper(profile.mapping, device.kind, device.id,
                                                   pseudonymise)
            settings = device.onenet
            if settings.imei is not None:
                self._by_imei[settings.imei] = device.id
            if settings.device_name is not None:
                self._by_name[(settings.product_id, settings.device_name)] = device.id

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(self._config.path, self._verification)
        router.add_post(self._config.path, self._push)

    def find(self, device: Device) -> str | None:
        if device.imei is not None and device.imei in self._by_imei:
            return self._by_imei[device.imei]
        if device.device_name is None:
            return None
        return (self._by_name.get((device.product_id, device.device_name))
                or self._by_name.get((None, device.device_name)))

    async def _verification(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        msg, nonce, signature = (query.get("msg"), query.get("nonce"),
                                 query.get("signature"))
        if msg is None or nonce is None or signature is None:
            return self._refuse(400, "malformed_verification",
                                "a verification GET needs msg, nonce and signature")
        if not verify(self._config.token, nonce, msg, signature):
            return self._refuse(403, "bad_signature", "verification GET not signed with the "
                                "instance's token")
        log.info("OneNET push instance verified")
        return web.Response(text=msg)  # the instance is verified when msg comes back as is

    async def _push(self, request: web.Request) -> web.Response:
        # the signature and the device are in the body: until it is read, anyone on the LAN
        # may be sending it, so it is read in a slot of the other class, never in one kept
        # for alarms (docs/decisions.md, "The HTTP push port under a storm")
        body = await self._body(request, ())
        if isinstance(body, web.Response):
            return body
        try:
            envelope = parse_envelope(body)
        except MalformedPushError as exc:
            return self._refuse(400, "malformed_push", str(exc))
        if not verify(self._config.token, envelope.nonce, envelope.msg, envelope.signature):
            return self._refuse(403, "bad_signature", f"push {envelope.id} is not signed with "
                                "the instance's token")
        text = envelope.msg
        if self._config.aes_key is not None:
            try:
                text = decrypt(self._config.aes_key, envelope.msg)
            except UndecryptableError as exc:
                return self._refuse(400, "undecryptable", f"push {envelope.id}: {exc}")
        try:
            message = parse_message(text)
        except MalformedPushError as exc:
            return self._refuse(400, "malformed_message", f"push {envelope.id}: {exc}")
        if isinstance(message, Other):
            return self._ignored(message)
        device = self.find(message.device)
        if device is None:
            return self._unknown(f"push {envelope.id}", message.device)
        async with self.uplinks.lock(device):
            receipt = self.uplinks.receipt(envelope.id, text.encode())
            if receipt is None:
                return self.uplinks.again(device)
            if isinstance(message, LifeCycle):
                self._online(device, message.online)
                self.uplinks.note(receipt)
                return answer(200, accepted=[])
            assert isinstance(message, Notify)
            decoded = self._decoders[device].decode(message.body, self._clock.now_ms())
            return await self._deliver(device, decoded, receipt)
