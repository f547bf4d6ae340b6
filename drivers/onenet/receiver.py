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

from drivers.intake import Intake
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
from drivers.platform_push import (
    Admit,
    PlatformIntake,
    ReadBody,
    Uplinks,
    answer,
    platform_intake,
)
from drivers.profile import Profile
from drivers.pseudonym import Pseudonymiser
from gateway.core.clock import Clock
from gateway.core.config import OneNetConfig, OneNetDevice
from gateway.core.counters import Counters
from gateway.core.journaling import ReceiptBook

log = logging.getLogger(__name__)

LABEL = "onenet"  # the `device` label of what cannot be told apart by device


class OneNetReceiver:
    def __init__(self, config: OneNetConfig, devices: list[tuple[OneNetDevice, Profile]],
                 clock: Clock, counters: Counters, receipts: ReceiptBook | None = None,
                 pseudonymise: Pseudonymiser | None = None) -> None:
        self._config = config
        self._clock = clock
        self._counters = counters
        self._mappers: dict[str, JsonMapper] = {}
        self._by_imei: dict[str, str] = {}
        self._by_name: dict[tuple[str | None, str], str] = {}
        for device, profile in devices:
            if not isinstance(profile.mapping, JsonMap):
                raise ValueError(f"{device.id}: profile {profile.name} is not a json profile")
            self._mappers[device.id] = JsonMapper(profile.mapping, device.kind, device.id,
                                                  pseudonymise)
            settings = device.onenet
            if settings.imei is not None:
                self._by_imei[settings.imei] = device.id
            if settings.device_name is not None:
                self._by_name[(settings.product_id, settings.device_name)] = device.id
        self.uplinks = Uplinks(LABEL, receipts, config.redelivery_window_s, clock, counters)
        self._intake: PlatformIntake | None = None
        self._read: ReadBody | None = None
        self._admit: Admit | None = None

    @property
    def devices(self) -> int:
        return len(self._mappers)

    def add_routes(self, router: web.UrlDispatcher, intake: Intake, read: ReadBody,
                   admit: Admit) -> None:
        self._intake = platform_intake(intake, "OneNET")
        self._read = read
        self._admit = admit
        router.add_get(self._config.path, self._verification)
        router.add_post(self._config.path, self._push)

    def find(self, device: Device) -> str | None:
        if device.imei is not None and device.imei in self._by_imei:
            return self._by_imei[device.imei]
        if device.device_name is None:
            return None
        return (self._by_name.get((device.product_id, device.device_name))
                or self._by_name.get((None, device.device_name)))

    def _refuse(self, status: int, reason: str, detail: str) -> web.Response:
        self._counters.reject(log, LABEL, reason, detail)
        return answer(status, error=reason)

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
        assert self._read is not None
        assert self._admit is not None
        assert self._intake is not None
        # the signature and the device are in the body: until it is read, anyone on the LAN
        # may be sending it, so it is read in a slot of the other class, never in one kept
        # for alarms (docs/decisions.md, "The HTTP push port under a storm")
        busy = await self._admit(request, LABEL, ())
        if busy is not None:
            return busy
        body = await self._read(request, LABEL)
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
            self._counters.inc("onenet_ignored", type=message.message_type[:32])
            return answer(200, accepted=[], ignored=True)
        device = self.find(message.device)
        if device is None:
            self._counters.reject(log, LABEL, "unknown_device",
                                  f"push {envelope.id} for a device not configured "
                                  f"({message.device}); acknowledged so it is not pushed again")
            return answer(200, accepted=[], ignored=True)
        async with self.uplinks.lock(device):
            receipt = self.uplinks.receipt(envelope.id, text.encode())
            if receipt is None:
                return self.uplinks.again(device)
            if isinstance(message, LifeCycle):
                if message.online:
                    self._intake.seen(device)
                else:
                    self._intake.unreachable(device)
                self.uplinks.note(receipt)
                return answer(200, accepted=[])
            assert isinstance(message, Notify)
            decoded = self._mappers[device].decode(message.body, self._clock.now_ms())
            accepted = await self.uplinks.deliver(self._intake, device, decoded, receipt)
        return answer(200, accepted=accepted,
                      rejected=[{"reason": r, "detail": d} for r, d in decoded.problems])
