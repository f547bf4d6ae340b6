"""The console's web server (aiohttp, in the gateway's event loop).

Every request but the login page and the static files needs a session; without one, a page
answers 401 with the login form and an API call 401. Every state-changing request carries
the session's CSRF token in `X-CSRF-Token`. A viewer sees; an officer acts. The board is
pushed as server-sent events from the gateway's own state: the page never polls for it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec
from aiohttp import web

from gateway.acks import AckRefusedError
from gateway.console.access_log import AccessLog
from gateway.console.accounts import Account, AccountError, Accounts, Role
from gateway.console.alert_log import AlertLog, NoteError, check_note
from gateway.console.board import GatewayState, board, devices
from gateway.console.catalogue import CATALOGUES, choose
from gateway.console.pages import app_page, login_page
from gateway.console.sessions import SESSIONS_SUFFIX, LoginLimit, Session, Sessions
from gateway.console.shift import shift_report
from gateway.console.static import StaticFiles
from gateway.core.config import ConsoleConfig
from gateway.core.model import AlertState
from gateway.journal import Journal

log = logging.getLogger(__name__)

COOKIE = "scgw_session"
LOGIN_COOKIE = "scgw_login"  # the login form's CSRF token, double-submitted
CSRF_HEADER = "X-CSRF-Token"
KEEPALIVE_S = 15.0
BROKER_CHECK_S = 0.5
ACCOUNT_CHECK_S = 2.0  # an open board of an account removed (or given a new password) ends
MAX_STREAMS = 64  # open boards at once: a compound's duty office has a handful
MAX_BODY = 16_384
ACK_WAIT_S = 5.0
MAX_NAME = 64  # characters of a login name looked at; longer ones are no account's
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_SESSION = web.RequestKey("session", Session)
_ACCOUNT = web.RequestKey("account", Account)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AckPath(Protocol):
    async def acknowledge(self, rule: str, device: str, by: str) -> None: ...
    async def resolve(self, rule: str, device: str, by: str, reason: str) -> None: ...


class ConsoleGateway(GatewayState, Protocol):
    @property
    def acks(self) -> AckPath: ...
    @property
    def journal(self) -> Journal: ...


class ConsoleServer:
    """The console on `config.host:config.port`; `run` until cancelled."""

    def __init__(self, gateway: ConsoleGateway, log_: AlertLog, config: ConsoleConfig,
                 users_file: Path) -> None:
        self._gw = gateway
        self._log = log_
        self._config = config
        self._accounts = Accounts(users_file)
        self._sessions = Sessions(users_file.with_name(users_file.name + SESSIONS_SUFFIX))
        self._limit = LoginLimit()
        # logins, logouts and refused logins, journalled
        self.access = AccessLog(gateway.journal, gateway.clock, config.keep_days)
        self._streams: set[asyncio.Event] = set()
        self._static = StaticFiles()
        self.ready = asyncio.Event()
        self._closing = False
        log_.listeners.append(self._changed)
        gateway.board.listeners.append(self._changed)  # the devices page follows them

    def _changed(self) -> None:
        for wake in self._streams:
            wake.set()

    # -- serving -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_get("/static/{name}", self._static.serve)
        app.router.add_post("/logout", self._logout)
        for page in ("board", "devices", "shift"):
            app.router.add_get("/" if page == "board" else f"/{page}", self._page(page))
        app.router.add_get("/api/board", self._board)
        app.router.add_get("/api/devices", self._devices)
        app.router.add_get("/api/shift", self._shift)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_post("/api/alerts/{id}/ack", self._ack)
        app.router.add_post("/api/alerts/{id}/note", self._note)
        app.router.add_post("/api/alerts/{id}/resolve", self._resolve)
        app.router.add_post("/api/language", self._set_language)
        return app

    async def run(self) -> None:
        await asyncio.to_thread(self._sessions.load, self._gw.clock.now_ms())
        await self.access.load()
        # open streams end at once at a stop: the gateway's shutdown is bounded
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        tls = self._tls()
        try:
            await web.TCPSite(runner, self._config.host, self._config.port,
                              ssl_context=tls).start()
            log.info("console on %s://%s:%d/", "https" if tls else "http", self._config.host,
                     self._config.port)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            self._closing = True
            self._changed()  # the streams end first: the cleanup does not wait for them
            await runner.cleanup()

    def _tls(self) -> ssl.SSLContext | None:
        if self._config.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._config.tls.cert_file, self._config.tls.key_file)
        return context

    @property
    def _secure(self) -> bool:
        return self._config.tls is not None

    # -- the guard -----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._checked(request, handler)
        except AccountError as exc:
            # a file the gateway's user cannot read (made by root?), or damaged
            self._gw.counters.inc("console_refused", reason="accounts_unreadable")
            self._gw.counters.log_once(log, ("console", "accounts"), "console: %s", exc)
            response = web.json_response({"error": "the accounts cannot be read: see the "
                                          "gateway's log"}, status=503)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/login" or path.startswith("/static/"):
            return await handler(request)
        found = await self._session(request)
        if found is None:
            self._gw.counters.inc("console_refused", reason="no_session")
            if path.startswith("/api/") or request.method != "GET":
                return web.json_response({"error": "no session: log in"}, status=401)
            return self._login_response(request, None, status=401)
        session, account = found
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                self._gw.counters.inc("console_refused", reason="csrf")
                return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        request[_SESSION] = session
        request[_ACCOUNT] = account
        return await handler(request)

    async def _session(self, request: web.Request) -> tuple[Session, Account] | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        session = self._sessions.get(token, self._gw.clock.now_ms())
        if session is None:
            return None
        account = await asyncio.to_thread(self._accounts.get, session.user)
        if account is None or account.fingerprint != session.fingerprint:
            return None  # removed, or given a new password since
        return session, account

    def _language(self, request: web.Request, session: Session | None,
                  account: Account | None) -> str:
        if session is not None and session.language:
            return session.language
        if account is not None and account.language:
            return account.language
        return choose(request.headers.get("Accept-Language"), self._config.language)

    # -- login ---------------------------------------------------------------------------

    def _login_response(self, request: web.Request, error: str | None,
                        status: int = 200) -> web.Response:
        # one token per browser: a second tab's login form must not void the first one's
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = web.Response(text=login_page(self._language(request, None, None), token,
                                                error),
                                content_type="text/html", status=status)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict",
                            secure=self._secure, path="/")
        return response

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        return self._login_response(request, None)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password, csrf = (str(form.get(k, "")) for k in ("name", "password", "csrf"))
        name = name[:MAX_NAME]  # what the limit remembers of it stays small
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(csrf.encode(), expected.encode()):
            self._gw.counters.inc("console_refused", reason="csrf")
            return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        address = request.remote or "?"
        now = self._gw.clock.monotonic()
        if self._limit.refused(name, address, now):
            # refused before the password is looked at: guessing costs a minute per five
            self._gw.counters.inc("console_logins", result="limited")
            await self.access.record("login_limited", name, address)
            return self._login_response(request, "login.limited", status=429)
        account = await asyncio.to_thread(self._accounts.verify, name, password)
        if account is None:
            self._limit.failed(name, address, now)
            self._gw.counters.inc("console_logins", result="failed")
            log.warning("console: failed login for %r from %s", name[:32], address)
            await self.access.record("login_failed", name, address)
            return self._login_response(request, "login.failed", status=401)
        self._gw.counters.inc("console_logins", result="ok")
        token, _ = self._sessions.open(name, account.fingerprint, self._gw.clock.now_ms(),
                                       self._config.session_hours, None)
        await asyncio.to_thread(self._sessions.save)
        await self.access.record("login", name, address, account.role.value)
        log.info("console: %s (%s) logged in from %s", name, account.role, address)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                            secure=self._secure, path="/",
                            max_age=round(self._config.session_hours * 3600))
        response.del_cookie(LOGIN_COOKIE, path="/")
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self._sessions.close(request.cookies.get(COOKIE, ""))
        await asyncio.to_thread(self._sessions.save)
        await self.access.record("logout", request[_SESSION].user, request.remote,
                                 request[_ACCOUNT].role.value)
        self._changed()  # open streams of the session end
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # -- pages ---------------------------------------------------------------------------

    def _page(self, page: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session, account = request[_SESSION], request[_ACCOUNT]
            language = self._language(request, session, account)
            return web.Response(text=app_page(page, language, {
                "csrf": session.csrf, "user": session.user, "role": account.role.value}),
                content_type="text/html")
        return handler

    # -- data ----------------------------------------------------------------------------

    async def _board(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(board(self._gw, self._log), dumps=_dumps)

    async def _devices(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"now": self._gw.clock.now_ms(),
                                  "devices": devices(self._gw)}, dumps=_dumps)

    async def _shift(self, request: web.Request) -> web.StreamResponse:
        try:
            hours = float(request.query.get("hours", "12"))
        except ValueError:
            hours = -1
        if not 0 < hours <= 24 * 31:
            return web.json_response({"error": "hours: more than 0, at most 744"}, status=400)
        since = self._gw.clock.now_ms() - round(hours * 3_600_000)
        report = shift_report(self._log.records.values(), since)
        report["access"] = [msgspec.to_builtins(e) for e in self.access.since(since)]
        return web.json_response(report, dumps=_dumps)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """The board as server-sent events: at once, then at every change."""
        token = request.cookies.get(COOKIE, "")
        if len(self._streams) >= MAX_STREAMS:
            self._gw.counters.inc("console_refused", reason="too_many_streams")
            return web.json_response({"error": f"{MAX_STREAMS} boards are open already"},
                                     status=503)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        wake = asyncio.Event()
        self._streams.add(wake)
        broker: bool | None = None
        quiet = checked = 0.0
        try:
            await response.write(b"retry: 1000\n\n")
            wake.set()
            while True:
                if self._closing or self._sessions.get(token, self._gw.clock.now_ms()) is None:
                    return response  # logged out or expired: the page goes to the login
                if wake.is_set() or self._gw.link.connected != broker:
                    wake.clear()
                    broker = self._gw.link.connected
                    data = _dumps(board(self._gw, self._log))
                    await response.write(f"event: board\ndata: {data}\n\n".encode())
                    quiet = 0.0
                elif quiet >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    quiet = 0.0
                try:
                    await asyncio.wait_for(wake.wait(), BROKER_CHECK_S)
                except TimeoutError:
                    quiet += BROKER_CHECK_S
                    checked += BROKER_CHECK_S
                if checked >= ACCOUNT_CHECK_S:
                    checked = 0.0
                    if await self._session(request) is None:
                        return response  # removed, or a new password: log in again
        except (ConnectionResetError, ConnectionError):
            return response  # the page went away
        finally:
            self._streams.discard(wake)

    # -- acting --------------------------------------------------------------------------

    def _officer(self, request: web.Request) -> None:
        if request[_ACCOUNT].role is not Role.OFFICER:
            self._gw.counters.inc("console_refused", reason="viewer")
            raise web.HTTPForbidden(text='{"error": "a viewer cannot act"}',
                                    content_type="application/json")

    async def _text(self, request: web.Request) -> str:
        try:
            body = await request.json()
            note = body.get("note", "") if isinstance(body, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            note = None
        if not isinstance(note, str):
            raise web.HTTPBadRequest(text='{"error": "expected {\\"note\\": \\"...\\"}"}',
                                     content_type="application/json")
        try:
            return check_note(note)
        except NoteError as exc:
            raise web.HTTPBadRequest(text=_dumps({"error": str(exc)}),
                                     content_type="application/json") from exc

    async def _ack(self, request: web.Request) -> web.StreamResponse:
        self._officer(request)
        note = await self._text(request)
        alert_id = request.match_info["id"]
        alert = next((a for a in self._gw.rules.active() if a.id == alert_id), None)
        if alert is None:
            return web.json_response({"error": f"no active alert {alert_id}"}, status=409)
        user = request[_SESSION].user
        try:
            await self._gw.acks.acknowledge(alert.rule, alert.device, user)
        except AckRefusedError as exc:
            return web.json_response({"error": str(exc), "reason": exc.reason}, status=409)
        applied = await self._applied(alert.id, AlertState.FIRING)
        if note:
            await self._log.note(alert.id, user, note, what="ack_note")
        log.info("console: %s acknowledged %s on %s", user, alert.rule, alert.device)
        return web.json_response({"ok": True, "applied": applied},
                                 status=200 if applied else 202)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        self._officer(request)
        reason = await self._text(request)
        if not reason:
            return web.json_response({"error": "a resolution by hand needs a reason"},
                                     status=400)
        alert_id = request.match_info["id"]
        alert = next((a for a in self._gw.rules.active() if a.id == alert_id), None)
        if alert is None:
            return web.json_response({"error": f"no active alert {alert_id}"}, status=409)
        user = request[_SESSION].user
        try:
            await self._gw.acks.resolve(alert.rule, alert.device, user, reason)
        except AckRefusedError as exc:
            return web.json_response({"error": str(exc), "reason": exc.reason}, status=409)
        applied = await self._applied(alert.id, alert.state)
        await self._log.note(alert.id, user, reason, what="resolve_reason")
        log.info("console: %s resolved %s on %s by hand", user, alert.rule, alert.device)
        return web.json_response({"ok": True, "applied": applied},
                                 status=200 if applied else 202)

    async def _applied(self, alert_id: str, before: AlertState) -> bool:
        """Wait (bounded) until the rules applied the acknowledgement (the alert left state
        `before`), as `scgw alerts ack` waits for the gateway's answer: its note then
        follows it in the timeline."""
        changed = asyncio.Event()
        self._log.listeners.append(changed.set)
        try:
            async with asyncio.timeout(ACK_WAIT_S):
                while (record := self._log.records.get(alert_id)) is not None \
                        and record.alert.state is before:
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            return False
        finally:
            self._log.listeners.remove(changed.set)
        return True

    async def _note(self, request: web.Request) -> web.StreamResponse:
        self._officer(request)
        note = await self._text(request)
        if not note:
            return web.json_response({"error": "the note is empty"}, status=400)
        try:
            await self._log.note(request.match_info["id"], request[_SESSION].user, note)
        except NoteError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({"ok": True})

    async def _set_language(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        language = body.get("language") if isinstance(body, dict) else None
        if not isinstance(language, str) or language not in CATALOGUES:
            return web.json_response({"error": f"language: one of {', '.join(CATALOGUES)}"},
                                     status=400)
        token = request.cookies.get(COOKIE, "")
        self._sessions.update(token, _with_language(request[_SESSION], language))
        await asyncio.to_thread(self._sessions.save)
        return web.json_response({"ok": True})


def _with_language(session: Session, language: str) -> Session:
    return msgspec.structs.replace(session, language=language)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
