"""A local HTTP server that answers the provisioning calls like Grafana and records them.

It keeps data sources, folders, dashboards and alert rules by uid, answers 404 for unknown
uids, refuses duplicates (409) as Grafana does, checks the bearer token (401), and can be
told to forbid everything (403).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.ops.private_servers import free_port


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGrafana:
    token: str
    forbid: bool = False
    calls: list[Call] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.calls.append(Call(request.method, request.path,
                               request.headers.get("Authorization"), body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if self.forbid:
            return web.json_response({"message": "You'll need additional permissions to "
                                      "perform this action."}, status=403)
        return self._route(request.method, request.match_info["tail"].split("/"), body)

    def _route(self, method: str, parts: list[str], body: Any) -> web.Response:
        match method, parts:
            case "GET", ["datasources", "uid", uid]:
                return _found(self.datasources.get(uid))
            case "POST", ["datasources"]:
                if body["uid"] in self.datasources:
                    return _error(409, "data source with the same uid already exists")
                self.datasources[body["uid"]] = {**body, "id": next(self._ids)}
                return web.json_response({"datasource": self.datasources[body["uid"]],
                                          "message": "Datasource added"})
            case "PUT", ["datasources", "uid", uid]:
                if uid not in self.datasources:
                    return _error(404, "Data source not found")
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return web.json_response({"message": "Datasource updated"})
            case "GET", ["folders", uid]:
                return _found(self.folders.get(uid))
            case "POST", ["folders"]:
                if body["uid"] in self.folders:
                    return _error(409, "a folder with the same uid already exists")
                self.folders[body["uid"]] = {**body, "id": next(self._ids)}
                return web.json_response(self.folders[body["uid"]])
            case "POST", ["dashboards", "db"]:
                return self._save_dashboard(body)
            case "GET", ["v1", "provisioning", "alert-rules", uid]:
                return _found(self.rules.get(uid))
            case "POST", ["v1", "provisioning", "alert-rules"]:
                if body["uid"] in self.rules:
                    return _error(409, "an alert rule with this uid already exists")
                if body["folderUID"] not in self.folders:
                    return _error(400, "folder does not exist")
                self.rules[body["uid"]] = body
                return web.json_response(body, status=201)
            case "PUT", ["v1", "provisioning", "alert-rules", uid]:
                if uid not in self.rules:
                    return _error(404, "rule not found")
                self.rules[uid] = body
                return web.json_response(body)
        return _error(404, "Not found")

    def _save_dashboard(self, body: Any) -> web.Response:
        dashboard = body["dashboard"]
        if body.get("folderUid") not in self.folders:
            return _error(400, "folder not found")
        uid = dashboard["uid"]
        old = self.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            return _error(412, "A dashboard with the same uid already exists")
        version = 1 if old is None else old["version"] + 1
        self.dashboards[uid] = {"dashboard": dashboard, "folderUid": body["folderUid"],
                                "version": version}
        return web.json_response({"id": 1, "uid": uid, "url": f"/d/{uid}", "status": "success",
                                  "version": version})


def _found(item: dict[str, Any] | None) -> web.Response:
    return web.json_response(item) if item is not None else _error(404, "not found")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@asynccontextmanager
async def serving(grafana: FakeGrafana) -> AsyncIterator[FakeGrafana]:
    """Serve `grafana` on a loopback port under /grafana (a sub-path, as behind a proxy)."""
    app = web.Application()
    app.router.add_route("*", "/grafana/api/{tail:.*}", grafana.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    grafana.url = f"http://127.0.0.1:{port}/grafana"
    try:
        yield grafana
    finally:
        await runner.cleanup()
