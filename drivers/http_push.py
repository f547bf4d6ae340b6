"""Devices that push JSON over HTTP: one aiohttp server for all of them.

`POST /push/{device}` with `Authorization: Bearer <the device's token>`. The body is decoded
with the device's json profile (the same JsonMapper as MQTT ingress). Events are on disk
before the device gets its 200, so an accepted push is never lost; a push that carried only
telemetry is answered 202 (queued, and dropped first under pressure). `GET /health` answers
while the server runs.

A device with `http.auth = "signed"` signs each push instead of sending its token
(`drivers.http_signature`): a push whose timestamp is outside `replay_window_s` of the
gateway's clock, or whose nonce was already seen, is refused, so a captured push cannot be
sent again. With `[http.tls]` the port speaks only TLS (and with its `ca_file`, only to
devices holding a certificate from that CA).

Connections are admitted, timed and capped by `PushConnections`; the body of a push must
arrive within `body_timeout_s` (408 otherwise); nothing an unauthenticated client can do
writes more than a line a minute to the log.

A push is read only in a slot (`PushSlots`) of its class, taken once the sender is known
and before its body is read: devices of `alarm_kinds` (and platform routes that carry
them) may use the slots kept for alarms. While the rules or the MQTT sink are behind
(`behind`, the bounds the bulk broker session stops reading at), the others' pushes wait
in their slots, up to HOLD_S, then are answered 503. A device that pushes readings faster
than `limits.device_rate_hz` is answered 429 for the readings beyond it (counted as
`throttled{device}`, logged once a minute); a push that carries an event always passes.

A 429 for the rate is answered `http.throttled_hold_s` after the refusal (`HeldAnswers`,
counted as `throttled_held{device}`), with the push slot and the device's turn given back
at the refusal: a device that ignores its 429s sends at most one push a hold on each of its
connections instead of as fast as they are answered, which on the one event loop would be
at the cost of everyone else's pushes. While an answer is held, the device's next push on
that connection waits behind it (an alarm too, at most the hold); a push on another of its
connections, or on a new one, does not. At most a quarter of `http.max_connections` are
held at once, so that held connections never take the room others need; beyond, the 429
goes at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from drivers.http_connections import PacedLog, PushConnections, PushSlots
from drivers.http_signature import SCHEME, SeenNonces, Signature, UnsignedError
from drivers.http_tls import server_tls
from drivers.intake import Intake
from drivers.json_map import JsonMap, JsonMapper, MalformedJsonError, parse_json
from drivers.platform_push import PushRoutes
from drivers.profile import Profile
from drivers.pseudonym import Pseudonymiser
from drivers.throttle import HeldAnswers, Throttle
from gateway.core.clock import Clock
from gateway.core.config import HttpDevice, HttpServerConfig
from gateway.core.counters import Counters
from gateway.core.model import DeviceKind

log = logging.getLogger(__name__)

# reasons for which nothing in the push could be used
_UNUSABLE = frozenset({"malformed_payload"})
# after an answer given before the body was read (401, 413, 408), how long the rest of the
# body is read and thrown away so that the device sees the answer rather than a reset
_LINGER_S = 1.0
# aiohttp logs a bad request with a traceback, asyncio a failed accept() per connection
_SERVER_LOG = log.getChild("server")
_ASYNCIO_LOG = logging.getLogger("asyncio")
_ACCEPT_FAILED = "socket.accept() out of system resource"
# connections the kernel holds for the port until the loop accepts them (net.core.somaxconn
# caps it: 4096 on current kernels). Beyond it the kernel drops a connection's SYN and the
# sender tries again only after its retransmission timeout, 1 s: under a flood of
# connections an alarm push would take that second (asyncio's default is 100)
LISTEN_BACKLOG = 1024
THROTTLE_LOG_S = 60.0  # a throttled device is logged at most this often
# while the gateway is behind, another's push waits in its slot this long before its 503,
# looking again this often (as the bulk broker session does)
HOLD_S = 2.0
HOLD_EVERY_S = 0.02
_SLOT = web.RequestKey("push_slot", bool)  # the request holds a push slot
# the device whose push the answer refuses for its rate: the answer may be held
_THROTTLED = web.ResponseKey("throttled", str)


@dataclass(slots=True)
class _Pusher:
    device: HttpDevice
    token: bytes
    mapper: JsonMapper
    alarm: bool  # of a kind that calls for help: its pushes have reserved slots
    throttle: Throttle | None  # its readings beyond limits.device_rate_hz
    # one push at a time per device: its events reach the journal in the order they arrived
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HttpPushReceiver:
    """Serves every HTTP push device on one address; `ready` is set while it listens."""

    def __init__(
        self,
        server: HttpServerConfig,
        devices: list[tuple[HttpDevice, Profile]],
        clock: Clock,
        counters: Counters,
        pseudonymise: Pseudonymiser | None = None,
        *,
        shutdown_timeout_s: float = 5.0,
        platforms: Sequence[PushRoutes] = (),
        alarm_kinds: Collection[DeviceKind] = (),
        rate_hz: float = 0.0,
        burst_s: float = 5.0,
        behind: Callable[[], bool] | None = None,
    ) -> None:
        self._server = server
        # whether the rules or the MQTT sink are too far behind to take more than alarms
        self._behind = behind
        self._alarm_kinds = frozenset(alarm_kinds)
        self._rate_hz = rate_hz
        self.slots = PushSlots(server.max_pushes, server.alarm_pushes_reserved)
        # 429s for the rate answered late: at most a quarter of the connections held
        self.held = HeldAnswers(server.throttled_hold_s, server.max_connections // 4)
        # OneNET, CTWing, Hikvision terminals: routes of their own on this port
        self._platforms = list(platforms)
        self._clock = clock
        self._counters = counters
        self._shutdown_timeout_s = shutdown_timeout_s
        self._pushers: dict[str, _Pusher] = {}
        for device, profile in devices:
            if not isinstance(profile.mapping, JsonMap):
                raise ValueError(f"{device.id}: profile {profile.name} is not a json profile")
            if profile.kind != device.kind:
                raise ValueError(f"{device.id}: profile {profile.name} is for {profile.kind} "
                                 f"devices, not {device.kind}")
            mapper = JsonMapper(profile.mapping, device.kind, device.id, pseudonymise)
            throttle = Throttle(rate_hz, burst_s, clock.monotonic()) if rate_hz else None
            self._pushers[device.id] = _Pusher(device, device.http.token.encode(), mapper,
                                               device.kind in self._alarm_kinds, throttle)
        self.nonces = SeenNonces(server.replay_window_s, server.max_nonces_per_device)
        self._intake: Intake | None = None
        self._connections: PushConnections | None = None
        self.ready = asyncio.Event()

    @property
    def name(self) -> str:
        return "http_push"

    async def run(self, intake: Intake) -> None:
        self._intake = intake
        server = self._server
        app = web.Application(client_max_size=server.max_body_bytes,
                              middlewares=[self._track])
        app.router.add_post("/push/{device}", self._push)
        app.router.add_get("/health", self._health)
        for platform in self._platforms:
            platform.add_routes(app.router, intake, self._read, self._admit)
        # no access log: one line per request is a line per request of anyone on the LAN
        runner = web.AppRunner(app, shutdown_timeout=self._shutdown_timeout_s,
                               keepalive_timeout=server.idle_timeout_s,
                               lingering_time=min(_LINGER_S, server.body_timeout_s),
                               access_log=None, logger=_SERVER_LOG)
        paced = [(_SERVER_LOG, PacedLog(_SERVER_LOG.name, self._counters, self._clock)),
                 (_ASYNCIO_LOG, PacedLog(_ASYNCIO_LOG.name, self._counters, self._clock,
                                         only=(_ACCEPT_FAILED,)))]
        tls = await asyncio.to_thread(server_tls, server.tls) if server.tls else None
        self._warn_in_clear()
        await runner.setup()
        assert runner.server is not None
        self._connections = PushConnections(server, self._counters, self._clock,
                                            runner.server, tls)
        listener: asyncio.Server | None = None
        try:
            for logger, pacer in paced:
                logger.addFilter(pacer)
            listener = await asyncio.get_running_loop().create_server(
                self._connections, server.host, server.port, backlog=LISTEN_BACKLOG)
            log.info("HTTP push receiver on %s:%d (%s) for %d device(s)", server.host,
                     server.port, "TLS" if tls else "plain HTTP", self._devices)
            self.ready.set()
            await asyncio.Event().wait()  # serve until cancelled
        finally:
            self.ready.clear()
            if listener is not None:
                listener.close()
            await runner.cleanup()
            self._connections.close()
            for logger, pacer in paced:
                logger.removeFilter(pacer)

    def _warn_in_clear(self) -> None:
        if self._server.tls is not None:
            return
        bearer = sorted(d for d, p in self._pushers.items() if p.device.http.auth == "bearer")
        if bearer:
            log.warning("HTTP push device(s) %s send their token in clear over plain HTTP: "
                        "anyone on the LAN can read it and send a captured push again. Set "
                        "[http.tls] (cert_file, key_file), or http.auth = \"signed\" on "
                        "devices that can sign their pushes", ", ".join(bearer))

    @property
    def connections(self) -> PushConnections | None:
        """The connections of the running server."""
        return self._connections

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        assert self._connections is not None
        self._connections.request_started(request.transport)
        taken = False
        try:
            response = await handler(request)
            taken = response.status < 300 and request.get(_SLOT, False)
            throttled = response.get(_THROTTLED)
            if throttled is not None:
                await self._hold(request, throttled)
            return response
        finally:
            self._give_slot(request)
            self._connections.request_finished(request.transport, taken)

    def _give_slot(self, request: web.Request) -> None:
        if request.get(_SLOT, False):
            request[_SLOT] = False
            self.slots.give()

    async def _hold(self, request: web.Request, device: str) -> None:
        """Hold the 429 refusing `device`'s push for its rate, if a place is free: its slot
        goes back now, the answer `throttled_hold_s` later."""
        if not self.held.take():
            if self.held.hold_s > 0:
                self._counters.log_every(
                    log, ("http_push", "held_full"), self._clock.monotonic(), THROTTLE_LOG_S,
                    "%d answers to throttled pushes held, the most (a quarter of "
                    "http.max_connections): the 429 to %s goes at once; logged at most once "
                    "a minute", self.held.cap, device)
            return
        self._counters.inc("throttled_held", device=device)
        self._give_slot(request)
        try:
            await asyncio.sleep(self.held.hold_s)
        finally:
            self.held.give()

    async def _admit(self, request: web.Request, sender: str,
                     kinds: Collection[DeviceKind]) -> web.Response | None:
        """Take a push slot for `request` from `sender` (of `kinds`: an alarm's if any of
        them is an alarm kind), held until it is answered; the 503 to send if none is free.

        Another's push then waits, in its slot, while the gateway is behind (`behind`), up
        to HOLD_S: what stands in front of an alarm's alert stays bounded, and the storm
        waits in the devices, as the bulk broker session stops reading.
        """
        if request.get(_SLOT):
            return None
        alarm = not self._alarm_kinds.isdisjoint(kinds)
        if not self.slots.take(alarm):
            return self._busy(sender, alarm, "slots")
        request[_SLOT] = True
        if alarm or self._behind is None or not self._behind():
            return None
        held = asyncio.get_running_loop().time() + HOLD_S
        while self._behind():
            if asyncio.get_running_loop().time() >= held:
                return self._busy(sender, alarm, "downstream")  # the slot goes with it
            await asyncio.sleep(HOLD_EVERY_S)
        return None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "devices": self._devices})

    @property
    def _devices(self) -> int:
        return len(self._pushers) + sum(p.devices for p in self._platforms)

    async def _push(self, request: web.Request) -> web.Response:
        pusher = self._pushers.get(request.match_info["device"])
        if pusher is None:
            self._counters.inc("http_unknown_device")
            self._counters.log_once(log, ("http_push", "unknown_device"),
                                    "push for an unknown device refused (404); later ones are "
                                    "only counted")
            return _answer(404, error="unknown device")
        device = pusher.device.id
        signature: Signature | None = None
        if pusher.device.http.auth == "signed":
            try:
                signature = Signature.from_headers(request.headers)
            except UnsignedError as exc:
                return self._unauthorised(device, "unauthorised", str(exc))
            if self.nonces.stale(signature.timestamp, self._clock.now_ms() / 1000):
                return self._unauthorised(
                    device, "stale", f"timestamp {signature.timestamp} more than "
                    f"{self._server.replay_window_s:g} s from the gateway's clock")
        elif not _authorised(request, pusher.token):
            # the header may hold a real token of another device: never log it
            return self._unauthorised(device, "unauthorised", "missing or wrong bearer token")
        busy = await self._admit(request, device, (pusher.device.kind,))
        if busy is not None:
            return busy
        return await self._handle(request, pusher, signature)

    def _busy(self, sender: str, alarm: bool, reason: str) -> web.Response:
        """503 before the body is read: every push slot open to the sender's class is taken
        (`slots`), so that a flooding device never holds the connections an alarm needs;
        or, for a sender that is not an alarm device, the rules or the MQTT sink stayed
        behind while it waited (`downstream`)."""
        cls = "alarm" if alarm else "other"
        self._counters.inc("http_pushes_busy", cls=cls, reason=reason)
        why = (f"{self.slots.in_use} pushes in progress (http.max_pushes, "
               f"{self._server.alarm_pushes_reserved} of them kept for alarm devices)"
               if reason == "slots" else "the rules or the MQTT sink are behind")
        self._counters.log_every(
            log, ("http_push", "busy", cls, reason), self._clock.monotonic(), 60.0,
            "push from %s answered 503: %s; %d so far, logged at most once a minute",
            sender, why, self._counters.get("http_pushes_busy", cls=cls, reason=reason))
        answer = _answer(503, error="busy", headers={"Retry-After": "1"})
        answer.force_close()  # the connection goes back to the cap, not to the flood
        return answer

    async def _handle(self, request: web.Request, pusher: _Pusher,
                      signature: Signature | None) -> web.Response:
        device = pusher.device.id
        body_or_answer = await self._read(request, device)
        if isinstance(body_or_answer, web.Response):
            return body_or_answer
        body = body_or_answer
        if signature is not None:
            refused = self._replay_check(pusher, signature, body)
            if refused is not None:
                return refused
        try:
            payload = parse_json(body)
        except MalformedJsonError as exc:
            self._counters.reject(log, device, "malformed_json", f"not JSON: {exc}")
            return _answer(400, error="malformed JSON")
        return await self._accept(pusher, payload)

    def _unauthorised(self, device: str, reason: str, detail: str) -> web.Response:
        self._counters.reject(log, device, reason, detail)
        pusher = self._pushers[device]
        scheme = SCHEME if pusher.device.http.auth == "signed" else "Bearer"
        return _answer(401, error=reason, headers={"WWW-Authenticate": f'{scheme} realm="push"'})

    def _replay_check(self, pusher: _Pusher, signature: Signature,
                      body: bytes) -> web.Response | None:
        """None if the signed push is authentic and new (its nonce is then remembered)."""
        device = pusher.device.id
        if not signature.matches(pusher.token, device, body):
            return self._unauthorised(device, "bad_signature",
                                      "the signature does not match the push")
        now_s = self._clock.now_ms() / 1000
        self.nonces.expire(now_s)
        if self.nonces.seen(device, signature.nonce):
            return self._unauthorised(device, "replayed",
                                      f"nonce seen within the last "
                                      f"{self._server.replay_window_s:g} s")
        frees_at = self.nonces.full(device)
        if frees_at is not None:
            self._counters.reject(log, device, "nonce_limit",
                                  f"{self.nonces.cap} signed pushes within "
                                  f"{self._server.replay_window_s:g} s, the most remembered "
                                  "(http.max_nonces_per_device)")
            retry = max(1, math.ceil(frees_at - now_s))
            return _answer(429, error="too many pushes within the replay window",
                           headers={"Retry-After": str(retry)})
        self.nonces.add(device, signature.nonce, signature.timestamp)
        return None

    async def _read(self, request: web.Request, device: str) -> bytes | web.Response:
        """The body of a push, or the answer if it is too large or too late."""
        limit = self._server.max_body_bytes
        too_large = f"body larger than {limit} bytes"
        if request.content_length is not None and request.content_length > limit:
            self._counters.reject(log, device, "body_too_large", too_large)
            return _answer(413, error=too_large)
        try:
            async with asyncio.timeout(self._server.body_timeout_s):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked, with no length announced
            self._counters.reject(log, device, "body_too_large", too_large)
            return _answer(413, error=too_large)
        except TimeoutError:
            late = f"body not complete within {self._server.body_timeout_s} s"
            self._counters.reject(log, device, "body_timeout", late)
            answer = _answer(408, error=late)
            answer.force_close()
            return answer
        return body

    async def _accept(self, pusher: _Pusher, payload: object) -> web.Response:
        assert self._intake is not None
        device = pusher.device.id
        async with pusher.lock:
            decoded = pusher.mapper.decode(payload, self._clock.now_ms())
            problems = [{"reason": reason, "detail": detail}
                        for reason, detail in decoded.problems]
            for reason, detail in decoded.problems:
                self._counters.reject(log, device, reason, detail)
            if any(p["reason"] in _UNUSABLE for p in problems):
                return _answer(400, error="the payload is not a JSON object", rejected=problems)
            self._intake.seen(device)
            if (not decoded.events and decoded.reading is not None
                    and pusher.throttle is not None
                    and not pusher.throttle.allow(self._clock.monotonic())):
                # readings alone, beyond the device's rate: refused, so that the device
                # keeps them and gives them again; an event, an alarm first, always passes
                return self._throttled(pusher)
            accepted: list[str] = []
            for event in decoded.events:
                await self._intake.event(event)  # durable before the device hears "OK"
                accepted.append(event.id)
            if decoded.reading is not None:
                self._intake.reading(decoded.reading)
        self._counters.inc("http_pushes", device=device)
        if not problems:
            self._counters.recovered(device)
        if accepted:
            return _answer(200, accepted=accepted, rejected=problems)
        if decoded.reading is not None:
            return _answer(202, accepted=[], reading=decoded.reading.id, rejected=problems)
        if problems:
            return _answer(422, error="nothing in the push could be used", rejected=problems)
        return _answer(200, accepted=[])

    def _throttled(self, pusher: _Pusher) -> web.Response:
        device = pusher.device.id
        self._counters.inc("throttled", device=device)
        throttle = pusher.throttle
        now = self._clock.monotonic()
        if throttle is not None and now - throttle.logged_at >= THROTTLE_LOG_S:
            throttle.logged_at = now
            log.warning("device %s pushes readings faster than limits.device_rate_hz (%g/s): "
                        "the pushes of readings beyond it are answered 429 (counted as "
                        "throttled); its events pass", device, self._rate_hz)
        answer = _answer(429, error="pushing faster than the device's rate",
                         headers={"Retry-After": "1"})
        answer[_THROTTLED] = device
        return answer


def _authorised(request: web.Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token)


def _answer(status: int, *, headers: dict[str, str] | None = None,
            **body: object) -> web.Response:
    return web.json_response(body, status=status, headers=headers)
