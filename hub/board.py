"""The city board: every compound's active alerts, each with its district and compound.

Read-only: it has no route that changes anything (acknowledging stays with the compound's
duty office). An HTML page that reloads itself, and the same data as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from html import escape
from typing import Any

from aiohttp import web

from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.model import Severity
from hub.alerts import CityAlert, CityAlerts
from hub.config import BoardConfig

log = logging.getLogger(__name__)

RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2, Severity.INFO: 3}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STYLE = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
          "td,th{padding:.2em .6em;border-bottom:1px solid #ccc;text-align:left}"
          ".critical{background:#fdd}.major{background:#fed}")


def ordered(alerts: list[CityAlert]) -> list[CityAlert]:
    """By severity, then the longest waiting first."""
    return sorted(alerts, key=lambda a: (RANK[a.severity], a.since, a.district, a.site, a.id))


def board_data(alerts: CityAlerts, now_ms: int) -> dict[str, Any]:
    active = ordered(alerts.active())
    compounds = sorted({(a.district, a.site) for a in active})
    return {
        "now": now_ms,
        "synced": alerts.synced.is_set(),
        "compounds": [{"district": d, "site": s} for d, s in compounds],
        "alerts": [{"compound": f"{a.district}/{a.site}", "district": a.district,
                    "site": a.site, "id": a.id, "rule": a.rule, "device": a.device,
                    "kind": a.kind.value, "state": a.state.value,
                    "severity": a.severity.value, "since": a.since, "ts": a.ts,
                    "message": a.message, "by": a.by} for a in active],
    }


def board_page(data: dict[str, Any], refresh_s: int) -> str:
    rows = "".join(
        f'<tr class="{escape(a["severity"])}"><td>{escape(a["district"])}</td>'
        f'<td>{escape(a["site"])}</td><td>{escape(a["severity"])}</td>'
        f'<td>{escape(a["state"])}</td><td>{escape(a["rule"])}</td>'
        f'<td>{escape(a["device"])}</td><td>{escape(a["message"])}</td>'
        f'<td data-ms="{a["since"]}">{_utc(a["since"])}</td></tr>'
        for a in data["alerts"])
    stale = "" if data["synced"] else "<p><strong>still reading the city's alert state</strong>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_s}">
<title>City board</title><style>{_STYLE}</style></head>
<body><h1>City board</h1>{stale}
<p>{len(data["alerts"])} active alert(s) in {len(data["compounds"])} compound(s); read-only:
acknowledging stays with each compound's duty office.</p>
<table id="alerts"><thead><tr><th>district</th><th>compound</th><th>severity</th>
<th>state</th><th>rule</th><th>device</th><th>message</th><th>since (UTC)</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>"""


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


class BoardServer:
    """The board on `config.host:config.port`; `run` until cancelled."""

    def __init__(self, alerts: CityAlerts, config: BoardConfig, counters: Counters,
                 clock: Clock, backlog: Callable[[], dict[str, int]] = dict) -> None:
        self._alerts = alerts
        self._config = config
        self._counters = counters
        self._backlog = backlog
        self._clock = clock
        self.ready = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/board", self._board)
        app.router.add_get("/api/status", self._status)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers.update(HEADERS)
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
            await runner.cleanup()

    async def _page(self, request: web.Request) -> web.StreamResponse:
        data = board_data(self._alerts, self._clock.now_ms())
        return web.Response(text=board_page(data, self._config.refresh_s),
                            content_type="text/html")

    async def _board(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(board_data(self._alerts, self._clock.now_ms()),
                                 dumps=_dumps)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"counters": self._counters.snapshot(),
                                  "backlog": self._backlog()}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
