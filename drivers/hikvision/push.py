"""Hikvision terminals' pushes on the gateway's HTTP port: `POST /hikvision/{device}`.

A terminal's alarm server ("HTTP listening", `httpHosts`) is set to this path. The
terminal sends its notifications as it likes: one XML `EventNotificationAlert`, one JSON
object, or `multipart/form-data` with the notification in a JSON or XML part (named
`event_log`, `AccessControllerEvent`, ... by firmware) and the face pictures as
`image/jpeg` parts.

Before anything of the body is read, the push must come from one of the terminal's
configured addresses and carry its credentials (HTTP digest, or basic where the terminal
is set so): otherwise it is refused (403, 401), counted, and nothing is journalled. The
body is read as it arrives: the notification parts are held (up to `http.max_body_bytes`),
every picture part is read past and never kept (`privacy_dropped{what=picture}`), and the
whole push is held to `http.max_picture_push_bytes`. The terminal hears 200 only once its
events are on disk; a notification it sends again (the same `serialNo`) is journalled once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from ipaddress import ip_address

from aiohttp import web

from drivers.digest import DigestVerifier, basic_matches
from drivers.hikvision.alert import AlertError, Notification, alert_of, decode
from drivers.intake import Intake, MessageIntake
from drivers.json_map import MalformedJsonError, parse_json
from drivers.multipart import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartHead,
    boundary_of,
)
from drivers.platform_push import Admit, ReadBody
from drivers.pseudonym import Pseudonymiser
from drivers.safe_xml import XmlError, parse_xml
from gateway.core.clock import Clock
from gateway.core.config import HikvisionDevice, HttpServerConfig
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt, ReceiptBook

log = logging.getLogger(__name__)

PATH = "/hikvision/{device}"
RECEIPT_PREFIX = "hikvision:"
REALM = "scgw"
_CHUNK = 16_384
_EVENT_TYPES = ("application/json", "application/xml", "text/xml", "text/plain", "")
_JPEG = b"\xff\xd8"  # the start of every JPEG
_OK = ('<?xml version="1.0" encoding="UTF-8"?>\n<ResponseStatus version="2.0" '
       'xmlns="http://www.isapi.org/ver20/XMLSchema"><requestURL>/</requestURL>'
       '<statusCode>1</statusCode><statusString>OK</statusString>'
       '<subStatusCode>ok</subStatusCode></ResponseStatus>\n')


class PushRefused(Exception):
    """A push that cannot be used; `status` is the answer, `reason` the counter label."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class _Terminal:
    device: HikvisionDevice
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class _Body:
    documents: list[object] = field(default_factory=list)
    pictures: int = 0


class HikvisionPushes:
    """The routes of every configured Hikvision terminal (mounted by the push receiver)."""

    def __init__(self, devices: list[HikvisionDevice], server: HttpServerConfig, clock: Clock,
                 counters: Counters, pseudonymise: Pseudonymiser | None,
                 receipts: ReceiptBook | None = None) -> None:
        self._terminals = {d.id: _Terminal(d) for d in devices}
        self._server = server
        self._clock = clock
        self._counters = counters
        self._pseudonymise = pseudonymise
        self._receipts = receipts
        self._verifier = DigestVerifier(REALM)
        self._intake: Intake | None = None
        self._admit: Admit | None = None

    @property
    def devices(self) -> int:
        return len(self._terminals)

    def add_routes(self, router: web.UrlDispatcher, intake: Intake, read: ReadBody,
                   admit: Admit) -> None:
        """Serve the terminals' pushes on `router`, handing what they report to `intake`
        (the body is read part by part here, pictures past unread: not with `read`); each
        push in a slot of its terminal's class, taken before its body is read."""
        self._intake = intake
        self._admit = admit
        router.add_post(PATH, self.push)

    async def push(self, request: web.Request) -> web.Response:
        terminal = self._terminals.get(request.match_info["device"])
        if terminal is None:
            self._counters.inc("http_unknown_device")
            self._counters.log_once(log, ("hikvision", "unknown_device"),
                                    "Hikvision push for an unknown device refused (404); "
                                    "later ones are only counted")
            return web.Response(status=404, text="unknown device\n")
        device = terminal.device
        if not _allowed(request.remote, device):
            self._counters.reject(log, device.id, "address_not_allowed",
                                  f"push from {request.remote}, not one of the terminal's "
                                  "addresses (hikvision.addresses)")
            return web.Response(status=403, text="address not allowed\n")
        refused = self._authenticate(request, device)
        if refused is not None:
            return refused
        assert self._admit is not None
        busy = await self._admit(request, device.id, (device.kind,))
        if busy is not None:
            return busy
        try:
            body = await self._read(request, device)
        except PushRefused as exc:
            self._counters.reject(log, device.id, exc.reason, str(exc))
            answer = web.Response(status=exc.status, text=f"{exc}\n")
            if exc.status == 408:
                answer.force_close()
            return answer
        if body.pictures:
            self._counters.inc("privacy_dropped", body.pictures, device=device.id,
                               what="picture")
        return await self._accept(terminal, body)

    # -- authentication --------------------------------------------------------------

    def _authenticate(self, request: web.Request, device: HikvisionDevice
                      ) -> web.Response | None:
        settings = device.hikvision
        header = request.headers.get("Authorization", "")
        now_s = self._clock.now_ms() / 1000
        if settings.auth == "basic":
            if basic_matches(header, settings.username, settings.password):
                return None
            if header:
                self._counters.reject(log, device.id, "unauthorised",
                                      "wrong basic credentials")
            else:
                self._counters.inc("http_challenges", device=device.id)
            return web.Response(status=401, text="unauthorised\n",
                                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
        if header:
            verdict = self._verifier.check(header, request.method, settings.username,
                                           settings.password, now_s)
            if verdict.ok:
                return None
            if verdict.reason.startswith("replayed"):
                # a captured request sent again: its body may be anyone's
                self._counters.reject(log, device.id, "replayed", verdict.reason)
            elif not verdict.stale:
                self._counters.reject(log, device.id, "unauthorised",
                                      f"digest credentials refused: {verdict.reason}")
            else:
                self._counters.inc("http_challenges", device=device.id)
            return web.Response(status=401, text="unauthorised\n", headers={
                "WWW-Authenticate": self._verifier.challenge(now_s, stale=verdict.stale)})
        # a digest client's first request carries nothing: the challenge is its due
        self._counters.inc("http_challenges", device=device.id)
        return web.Response(status=401, text="unauthorised\n",
                            headers={"WWW-Authenticate": self._verifier.challenge(now_s)})

    # -- the body --------------------------------------------------------------------

    async def _read(self, request: web.Request, device: HikvisionDevice) -> _Body:
        server = self._server
        limit = server.max_picture_push_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PushRefused(413, "body_too_large", f"push larger than {limit} bytes")
        content_type = request.headers.get("Content-Type", "")
        try:
            async with asyncio.timeout(server.body_timeout_s):
                if content_type.lower().startswith("multipart/"):
                    return await self._multipart(request, content_type)
                return _Body([read_notification(await self._whole(request))])
        except TimeoutError:
            raise PushRefused(408, "body_timeout", f"body not complete within "
                              f"{server.body_timeout_s} s") from None

    async def _whole(self, request: web.Request) -> bytes:
        limit = self._server.max_body_bytes
        data = bytearray()
        async for chunk in request.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > limit:
                raise PushRefused(413, "body_too_large", f"notification larger than {limit} "
                                  "bytes")
        return bytes(data)

    async def _multipart(self, request: web.Request, content_type: str) -> _Body:
        server = self._server
        try:
            reader = MultipartReader(boundary_of(content_type))
        except MultipartError as exc:
            raise PushRefused(400, "malformed_multipart", str(exc)) from None
        body = _Body()
        total = 0
        held: bytearray | None = None  # the notification part being read
        async for chunk in request.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > server.max_picture_push_bytes:
                raise PushRefused(413, "body_too_large", f"push larger than "
                                  f"{server.max_picture_push_bytes} bytes")
            try:
                pieces = reader.feed(chunk)
            except MultipartError as exc:
                raise PushRefused(400, "malformed_multipart", str(exc)) from None
            for piece in pieces:
                if isinstance(piece, PartHead):
                    if _picture(piece):
                        body.pictures += 1  # read past, never kept
                        held = None
                    else:
                        held = bytearray()
                elif isinstance(piece, PartData) and held is not None:
                    first = len(held) < len(_JPEG)
                    held += piece.data
                    if first and held[:len(_JPEG)] == _JPEG:  # a picture not saying so
                        body.pictures += 1
                        held = None
                        continue
                    if len(held) > server.max_body_bytes:
                        raise PushRefused(413, "body_too_large", "notification part larger "
                                          f"than {server.max_body_bytes} bytes")
                elif isinstance(piece, PartEnd) and held is not None:
                    if held.strip():
                        body.documents.append(read_notification(bytes(held)))
                    held = None
            if reader.done:
                break
        if not reader.done and reader.in_part:
            raise PushRefused(400, "malformed_multipart", "the push ended inside a part")
        if not body.documents:
            raise PushRefused(400, "malformed_multipart", "no notification part")
        return body

    # -- journalling -----------------------------------------------------------------

    async def _accept(self, terminal: _Terminal, body: _Body) -> web.Response:
        assert self._intake is not None
        device = terminal.device
        now = self._clock.now_ms()
        decoded: list[Notification] = []
        for document in body.documents:
            try:
                decoded.append(decode(alert_of(document), device.kind, device.id, now,
                                      self._pseudonymise))
            except AlertError as exc:
                self._counters.reject(log, device.id, "malformed_notification", str(exc))
                return web.Response(status=400, text=f"{exc}\n")
        async with terminal.lock:
            self._intake.seen(device.id)
            for notification in decoded:
                for what, count in notification.dropped.items():
                    self._counters.inc("privacy_dropped", count, device=device.id, what=what)
                for reason, detail in notification.problems:
                    self._counters.reject(log, device.id, reason, detail)
                if notification.ignored is not None:
                    self._counters.inc("hikvision_ignored", device=device.id,
                                       reason=notification.ignored)
                if notification.heartbeat:
                    self._counters.inc("heartbeats", device=device.id)
                await self._journal(device, notification)
        self._counters.inc("http_pushes", device=device.id)
        return web.Response(status=200, text=_OK, content_type="application/xml")

    async def _journal(self, device: HikvisionDevice, notification: Notification) -> None:
        assert self._intake is not None
        if notification.reading is not None:
            self._intake.reading(notification.reading)
        if not notification.events:
            return
        duplicate, receipt = self._receipt(device, notification)
        if duplicate:
            self._counters.inc("duplicates_dropped", device=device.id)
            return
        if receipt is not None and isinstance(self._intake, MessageIntake):
            await self._intake.events(notification.events, receipt)
            return
        for event in notification.events:
            await self._intake.event(event)
        if receipt is not None and self._receipts is not None:
            self._receipts.note(receipt)

    def _receipt(self, device: HikvisionDevice, notification: Notification
                 ) -> tuple[bool, Receipt | None]:
        """Whether the events were journalled already (the terminal sent the same event
        again), and the receipt to journal them with (None when it cannot tell)."""
        if notification.serial is None or self._receipts is None:
            return False, None
        digest = hashlib.sha256(b"\0".join(
            f"{e.type}:{sorted(e.fields.items())}".encode() for e in notification.events
        )).digest()
        key = f"{RECEIPT_PREFIX}{device.id}:{notification.serial}"
        known = self._receipts.receipt(key)
        if known is not None and known.digest == digest:
            return True, None
        return False, Receipt(key, digest, self._clock.now_ms())


def _picture(head: PartHead) -> bool:
    """A part to read past: an image, anything but a notification, or a part named as a
    picture (some firmware gives its pictures no content type)."""
    name = head.name.lower()
    return (head.content_type.startswith("image/") or head.content_type not in _EVENT_TYPES
            or "picture" in name or "image" in name)


def _allowed(remote: str | None, device: HikvisionDevice) -> bool:
    if remote is None:
        return False
    try:
        address = ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in device.hikvision.addresses)


def read_notification(data: bytes) -> object:
    """A notification part or body as plain values: XML or JSON, by its first byte."""
    text = data.lstrip()
    if text.startswith(b"<"):
        try:
            root, value = parse_xml(data)
        except XmlError as exc:
            raise PushRefused(400, "malformed_xml", str(exc)) from None
        if root != "EventNotificationAlert" or not isinstance(value, dict):
            raise PushRefused(400, "malformed_xml", f"root element {root[:40]!r}, not "
                              "EventNotificationAlert")
        return value
    try:
        return parse_json(data)
    except MalformedJsonError as exc:
        raise PushRefused(400, "malformed_json", f"not JSON or XML: {exc}") from None
