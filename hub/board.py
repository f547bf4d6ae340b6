"""The city board: the duty console's board (gateway/console: its page, styles and alert
cards) in multi-compound mode. Every compound's active alerts, each with its district and
compound, a compound filter, and the latest events of every compound.

Read-only: no route changes anything, except acknowledging an alert of a compound that
`board.ack_granted` names (sent to the compound's gateway: hub/acks.py), by a user the
city's authenticating proxy names (`board.user_header`); everything else stays with the
compound's duty office. The board is pushed to the page as server-sent events, as the
console's is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web

from gateway.console.catalogue import CATALOGUES, choose
from gateway.console.pages import city_page
from gateway.console.server import SECURITY_HEADERS
from gateway.console.static import StaticFiles
from gateway.core.city import MAX_CITY_USER, CityAckAnswer
from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import AlertState, Severity
from hub.alerts import CityAlert, CityAlerts
from hub.config import BoardConfig
from hub.feed import EventFeed

log = logging.getLogger(__name__)

RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2, Severity.INFO: 3}
EVENTS_ON_BOARD = 50  # the latest events pushed with the board; /api/events has them all
KEEPALIVE_S = 15.0
PUSH_GAP_S = 0.25  # a burst of changes is one push per this long
MAX_STREAMS = 256
CSRF_HEADER = "X-CSRF-Token"
CSRF_TOKEN = "city-board"  # a custom header: a page of another site cannot send it
# the gateway's refusals that are the board's 403: the compound does not let the city
FORBIDDEN = {"city_not_granted"}
UNAVAILABLE = {"not_connected", "timeout", "unreachable", "bad_answer"}
Acknowledge = Callable[[CityAlert, str], Awaitable[CityAckAnswer]]


def ordered(alerts: list[CityAlert]) -> list[CityAlert]:
    """By severity, then the longest waiting first."""
    return sorted(alerts, key=lambda a: (RANK[a.severity], a.since, a.district, a.site, a.id))


def alert_view(alert: CityAlert, ackable: bool) -> dict[str, Any]:
    """An alert as the console's page shows one, with its compound."""
    timeline = [{"what": AlertState.FIRING.value, "ts": alert.since}]
    if alert.state is not AlertState.FIRING:
        timeline.append({"what": alert.state.value, "ts": alert.ts, "by": alert.by})
    return {
        "key": alert.key, "compound": f"{alert.district}/{alert.site}",
        "district": alert.district, "site": alert.site, "id": alert.id, "rule": alert.rule,
        "device": alert.device, "kind": alert.kind.value, "state": alert.state.value,
        "severity": alert.severity.value, "since": alert.since, "ts": alert.ts,
        "message": alert.message, "by": alert.by, "place": alert.place,
        "resolvable": False, "escalation": None, "timeline": timeline,
        "ackable": ackable and alert.state is AlertState.FIRING,
    }


def board_data(alerts: CityAlerts, feed: EventFeed | None, now_ms: int,
               granted: Callable[[str, str], bool] = lambda d, s: False) -> dict[str, Any]:
    active = ordered(alerts.active())
    # the compounds with an active alert or among the latest events (not every compound
    # ever heard of: a city has thousands), each with how many of those events it has
    counts = Counter((e["district"], e["site"]) for e in feed.events) if feed else Counter()
    compounds = sorted({(a.district, a.site) for a in active} | set(counts))
    waiting: dict[tuple[str, str], int] = {}
    for a in active:
        waiting[(a.district, a.site)] = waiting.get((a.district, a.site), 0) + 1
    latest = list(islice(reversed(feed.events), EVENTS_ON_BOARD)) if feed is not None else []
    return {
        "now": now_ms,
        "mode": "city",
        "synced": alerts.synced.is_set(),
        "compounds": [{"compound": f"{d}/{s}", "district": d, "site": s,
                       "active": waiting.get((d, s), 0), "events": counts.get((d, s), 0),
                       "ack_granted": granted(d, s)} for d, s in compounds],
        "alerts": [alert_view(a, granted(a.district, a.site)) for a in active],
        "events": latest,
    }


class BoardServer:
    """The board on `config.host:config.port`; `run` until cancelled."""

    def __init__(self, alerts: CityAlerts, config: BoardConfig, counters: Counters,
                 clock: Clock, status: Callable[[], dict[str, Any]] = dict,
                 feed: EventFeed | None = None, acknowledge: Acknowledge | None = None
                 ) -> None:
        self._alerts = alerts
        self._acknowledge = acknowledge
        self._feed = feed
        self._config = config
        self._counters = counters
        self._status = status
        self._clock = clock
        self._static = StaticFiles()
        self._streams: set[asyncio.Event] = set()
        self._closing = False
        self.ready = asyncio.Event()
        alerts.listeners.append(self._changed)
        if feed is not None:
            feed.listeners.append(self._changed)

    def _changed(self) -> None:
        for wake in self._streams:
            wake.set()

    def granted(self, district: str, site: str) -> bool:
        return self._acknowledge is not None and self._config.grants(district, site)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers], client_max_size=16_384)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static.serve)
        app.router.add_get("/api/board", self._board)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_get("/api/status", self._status_route)
        if self._config.ack_granted and self._acknowledge is not None:
            app.router.add_post("/api/alerts/{key}/ack", self._ack)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def run(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._config.host, self._config.port).start()
            log.info("city board on http://%s:%d/", self._config.host, self._config.port)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            self._closing = True
            self._changed()
            await runner.cleanup()

    def data(self) -> dict[str, Any]:
        return board_data(self._alerts, self._feed, self._clock.now_ms(), self.granted)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        asked = request.query.get("lang", "")
        language = asked if asked in CATALOGUES else choose(
            request.headers.get("Accept-Language"), self._config.language)
        user = self._user(request) if self._config.ack_granted else None
        return web.Response(text=city_page(language, user, CSRF_TOKEN),
                            content_type="text/html")

    def _user(self, request: web.Request) -> str | None:
        """Who the city's authenticating proxy says is asking; None when it says nothing
        or the request did not come through it."""
        header = self._config.user_header
        if header is None or request.remote not in self._config.proxy_addresses:
            return None
        user = request.headers.get(header, "").strip()
        return user[:MAX_CITY_USER] or None

    async def _ack(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge a firing alert of a granted compound, at its gateway."""
        user = self._user(request)
        if user is None:
            return self._refused("no_user", 401, "no user: the board acknowledges only "
                                 "behind the city's authenticating proxy")
        if request.headers.get(CSRF_HEADER) != CSRF_TOKEN or \
                request.headers.get("Sec-Fetch-Site", "same-origin") == "cross-site":
            return self._refused("csrf", 403, "missing or wrong CSRF token")
        alert = self._alerts.current.get(request.match_info["key"])
        if alert is None or alert.state is AlertState.RESOLVED:
            return self._refused("not_active", 404, "no such active alert")
        if not self.granted(alert.district, alert.site):
            return self._refused("not_granted", 403, f"acknowledging alerts of "
                                 f"{alert.district}/{alert.site} stays with its duty office")
        if alert.state is not AlertState.FIRING:
            return self._refused("not_firing", 409, f"acknowledged already by {alert.by}")
        assert self._acknowledge is not None
        answer = await self._acknowledge(alert, user)
        if not answer.ok:
            status = (403 if answer.reason in FORBIDDEN else
                      504 if answer.reason in UNAVAILABLE else 409)
            return self._refused(answer.reason, status, answer.error)
        self._counters.inc("board_acks", result="journalled")
        log.info("city board: %s acknowledged %s of %s/%s", user, alert.rule, alert.district,
                 alert.site)
        return web.json_response({"ok": True})

    def _refused(self, reason: str, status: int, error: str) -> web.Response:
        self._counters.inc("board_acks", result=reason)
        return web.json_response({"error": error, "reason": reason}, status=status,
                                 dumps=_dumps)

    async def _board(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.data(), dumps=_dumps)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Every event the board keeps (oldest first), of one compound (`?compound=d/s`)
        or of all, and how many of each compound this process read (from the stream's last
        `events_kept` messages at its start on)."""
        feed = self._feed
        wanted = request.query.get("compound")
        events = [e for e in feed.events if wanted in (None, e["compound"])] if feed else []
        counts = {f"{d}/{s}": n for (d, s), n in sorted(feed.counts.items())} if feed else {}
        return web.json_response({"now": self._clock.now_ms(), "events": events,
                                  "counts": counts,
                                  "synced": feed is not None and feed.synced.is_set()},
                                 dumps=_dumps)

    async def _status_route(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"counters": self._counters.snapshot(), **self._status()},
                                 dumps=_dumps)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """The board as server-sent events: at once, then after each change (a burst of
        changes is one push every PUSH_GAP_S)."""
        if len(self._streams) >= MAX_STREAMS:
            self._counters.inc("board_refused", reason="too_many_streams")
            return web.json_response({"error": f"{MAX_STREAMS} boards are open already"},
                                     status=503)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        wake = asyncio.Event()
        self._streams.add(wake)
        try:
            await response.write(b"retry: 1000\n\n")
            wake.set()
            while not self._closing:
                if wake.is_set():
                    wake.clear()
                    data = _dumps(self.data())
                    await response.write(f"event: board\ndata: {data}\n\n".encode())
                    await asyncio.sleep(PUSH_GAP_S)
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
            return response
        except (ConnectionResetError, ConnectionError):
            return response  # the page went away
        finally:
            self._streams.discard(wake)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
