"""Point a Hikvision terminal's alarm server at the gateway, and read the setting back.

`PUT /ISAPI/Event/notification/httpHosts?format=json` with the terminal's administrator
account (ISAPI answers only HTTP digest), a `HttpHostNotificationList` of one
`HttpHostNotification`: the gateway's address and port, the device's push path, JSON
notifications, and the push credentials of the device's configuration (`MD5digest` for
digest, `base64` for basic). Then `GET` of the same resource: the setting must read back as
sent (the terminal never returns the password).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from drivers.digest import DigestClient, DigestError
from gateway.core.config import HikvisionDevice

PATH = "/ISAPI/Event/notification/httpHosts?format=json"
_AUTH_METHOD = {"digest": "MD5digest", "basic": "base64"}
_COMPARED = ("url", "protocolType", "parameterFormatType", "addressingFormatType",
             "ipAddress", "portNo", "httpAuthenticationMethod", "userName")


class SetupError(Exception):
    """The terminal could not be set up; the message says what it answered."""


@dataclass(frozen=True, slots=True)
class SetupRequest:
    """What `setup` sends: the terminal's ISAPI URL and the JSON body."""

    url: str
    body: dict[str, Any]

    def shown(self) -> str:
        """The request as a dry run prints it, the password masked."""
        body = json.loads(json.dumps(self.body))
        for entry in body["HttpHostNotificationList"]:
            entry["HttpHostNotification"]["password"] = "********"
        return f"PUT {self.url}\n{json.dumps(body, indent=2)}"


def setup_request(device: HikvisionDevice, gateway_host: str, gateway_port: int
                  ) -> SetupRequest:
    settings = device.hikvision
    host = settings.host or str(settings.addresses[0].network_address)
    host_entry = {
        "id": "1", "url": f"/hikvision/{device.id}", "protocolType": "HTTP",
        "parameterFormatType": "JSON", "addressingFormatType": "ipaddress",
        "ipAddress": gateway_host, "portNo": gateway_port,
        "httpAuthenticationMethod": _AUTH_METHOD[settings.auth],
        "userName": settings.username, "password": settings.password,
    }
    return SetupRequest(f"http://{host}:{settings.port}{PATH}",
                        {"HttpHostNotificationList": [{"HttpHostNotification": host_entry}]})


async def apply(request: SetupRequest, admin_user: str, admin_password: str, *,
                timeout_s: float = 10.0) -> dict[str, Any]:
    """Send the setting and read it back; the entry read back. SetupError if it differs."""
    digest = DigestClient(admin_user, admin_password)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _call(session, digest, "PUT", request.url, request.body)
        answer = await _call(session, digest, "GET", request.url, None)
    wanted = request.body["HttpHostNotificationList"][0]["HttpHostNotification"]
    try:
        entries = answer["HttpHostNotificationList"]
        entry = next(e["HttpHostNotification"] for e in entries
                     if str(e["HttpHostNotification"].get("id")) == wanted["id"])
    except (KeyError, TypeError, StopIteration):
        raise SetupError(f"the terminal's httpHosts read back without host {wanted['id']}: "
                         f"{json.dumps(answer)[:200]}") from None
    differ = [k for k in _COMPARED if str(entry.get(k)) != str(wanted[k])]
    if differ:
        raise SetupError("the terminal kept another setting for " + ", ".join(
            f"{k} ({entry.get(k)!r}, not {wanted[k]!r})" for k in differ))
    result: dict[str, Any] = entry
    return result


async def _call(session: aiohttp.ClientSession, digest: DigestClient, method: str, url: str,
                body: dict[str, Any] | None) -> Any:
    uri = URL(url).raw_path_qs
    for _ in range(2):
        headers = {"Authorization": digest.authorization(method, uri)} if digest.ready else {}
        async with session.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            if response.status == 401:
                challenge = response.headers.get("WWW-Authenticate", "")
                if headers and "stale=true" not in challenge:
                    raise SetupError(f"{method} {url}: the administrator user name or "
                                     "password was refused")
                try:
                    digest.challenged(challenge)
                except DigestError as exc:
                    raise SetupError(f"{method} {url}: no usable digest challenge: {exc}"
                                     ) from None
                continue
            if response.status != 200:
                raise SetupError(f"{method} {url}: HTTP {response.status}: {text[:200]}")
            try:
                return json.loads(text) if text.strip() else {}
            except ValueError:
                raise SetupError(f"{method} {url}: the answer is not JSON: {text[:200]}"
                                 ) from None
    raise SetupError(f"{method} {url}: the terminal challenged every answer")
