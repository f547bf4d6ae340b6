"""The console's stylesheet and script, which the city's board serves too: read once from
the package, served at `/static/{name}`."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


def static_file(name: str) -> bytes:
    return resources.files("gateway.console").joinpath("static", name).read_bytes()


class StaticFiles:
    """Every file of STATIC, read at once; `serve` answers `GET /static/{name}`."""

    def __init__(self) -> None:
        self._files = {name: static_file(name) for name in STATIC}

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._files:
            raise web.HTTPNotFound()
        return web.Response(body=self._files[name], content_type=STATIC[name],
                            charset="utf-8")
