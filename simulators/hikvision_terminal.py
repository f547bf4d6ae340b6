"""A Hikvision face/card terminal pushing ISAPI notifications to its alarm server.

As the real one does (layouts from terminals' captures published with open integrations):
`multipart/form-data; boundary=MIME_boundary` with the notification as a JSON part named
`event_log` and the face picture as a `Picture` part of `image/jpeg`; or the notification
alone as JSON or XML. Each push answers HTTP digest (or basic) authentication first: the
first request goes without credentials, the 401's challenge is answered, and later pushes
reuse it until the gateway says the nonce is stale.

Every access event carries a person: name, employee number and card number, and the
picture: a real (tiny) JPEG. The gateway must keep none of them.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp
from yarl import URL

from drivers.digest import DigestClient

# a 1x1 JFIF picture with a comment segment after its header: its bytes are unmistakable
_MARK = b"scgw simulated face picture 9d41c7"
_PIXEL = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////"
    "////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/a"
    "AAgBAQABPxA=")
FACE_JPEG = (_PIXEL[:20] + b"\xff\xfe" + (len(_MARK) + 2).to_bytes(2, "big") + _MARK
             + _PIXEL[20:] + b"\xff\xd9")

Layout = Literal["multipart", "json", "xml"]


@dataclass(frozen=True)
class Person:
    """Who stands at the terminal: everything the gateway must not keep."""

    name: str
    employee_no: str
    card_no: str


RESIDENT = Person("Wang Xiuying", "EMP-20417", "3107226645")


class HikvisionTerminal:
    """Pushes to `url` (the gateway's `/hikvision/{device}`) as one terminal."""

    def __init__(self, url: str, *, username: str, password: str,
                 auth: Literal["digest", "basic"] = "digest", layout: Layout = "multipart",
                 address: str = "192.168.1.64", with_picture: bool = True) -> None:
        self.url = url
        self.layout = layout
        self.with_picture = with_picture
        self._username = username
        self._password = password
        self._auth = auth
        self._digest = DigestClient(username, password)
        self._address = address
        self._serial = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self.pictures_sent = 0
        self.statuses: list[int] = []

    async def __aenter__(self) -> HikvisionTerminal:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    # -- what the terminal reports -------------------------------------------------------

    def alert(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """The envelope of a notification, as the terminal fills it."""
        return {"ipAddress": self._address, "portNo": 80, "protocol": "HTTP",
                "macAddress": "44:19:b6:00:00:01", "channelID": 1,
                "dateTime": datetime.now(UTC).isoformat(timespec="seconds"),
                "activePostCount": 1, "eventType": event_type, "eventState": "active",
                "eventDescription": event_type, **fields}

    def access(self, major: int, minor: int, person: Person | None = RESIDENT, *,
               serial: int | None = None, **extra: Any) -> dict[str, Any]:
        """An `AccessControllerEvent`; with a person, their name, numbers and a face."""
        body: dict[str, Any] = {"deviceName": "Entrance", "majorEventType": major,
                                "subEventType": minor, "doorNo": 1, "cardReaderNo": 1,
                                "serialNo": serial if serial is not None else next(self._serial),
                                "currentVerifyMode": "cardOrFace", "picturesNumber": 1,
                                **extra}
        if person is not None:
            body.update(name=person.name, employeeNoString=person.employee_no,
                        cardNo=person.card_no, cardType=1, userType="normal")
        return self.alert("AccessControllerEvent", AccessControllerEvent=body)

    def temperature(self, celsius: float, *, abnormal: bool, mask: str = "yes",
                    person: Person | None = RESIDENT) -> dict[str, Any]:
        """A face-temperature terminal's passage (face authenticated, temperature taken)."""
        return self.access(5, 0x4B, person, thermometryUnit="celsius",
                           currTemperature=celsius, isAbnomalTemperature=abnormal,
                           mask=mask)

    def io(self, port: int, active: bool) -> dict[str, Any]:
        alert = self.alert("IO", inputIOPortID=port)
        alert["eventState"] = "active" if active else "inactive"
        return alert

    def heartbeat_alert(self) -> dict[str, Any]:
        return self.alert("heartBeat")

    # -- pushing ---------------------------------------------------------------------------

    async def heartbeat(self) -> int:
        return await self.push(self.heartbeat_alert(), picture=False)

    async def push(self, alert: dict[str, Any], *, picture: bool | None = None,
                   credentials: bool = True) -> int:
        """Push one notification; the final HTTP status."""
        body, content_type = self.body(alert, picture=self.with_picture
                                       if picture is None else picture)
        status = await self.send(body, content_type, credentials=credentials)
        self.statuses.append(status)
        return status

    def body(self, alert: dict[str, Any], *, picture: bool) -> tuple[bytes, str]:
        # a face is captured when a person stands at the terminal; the bare JSON and XML
        # layouts are those of a terminal set to upload no pictures
        person = alert.get("AccessControllerEvent", {}).get("name") is not None
        picture = picture and person and self.layout == "multipart"
        if self.layout == "xml":
            return to_xml(alert), "application/xml"
        if self.layout == "json":
            return _json(alert), "application/json"
        boundary = "MIME_boundary"
        parts = [_part(boundary, 'form-data; name="event_log"', "application/json",
                       _json(alert))]
        if picture:
            parts.append(_part(boundary, 'form-data; name="Picture"; filename="Picture.jpg"',
                               "image/jpeg", FACE_JPEG))
            self.pictures_sent += 1
        return (b"".join(parts) + f"--{boundary}--\r\n".encode(),
                f"multipart/form-data; boundary={boundary}")

    async def send(self, body: bytes, content_type: str, *, credentials: bool = True) -> int:
        assert self._session is not None
        path = URL(self.url).raw_path
        for _ in range(3):
            headers = {"Content-Type": content_type}
            if credentials and self._auth == "basic":
                token = base64.b64encode(f"{self._username}:{self._password}".encode())
                headers["Authorization"] = "Basic " + token.decode()
            elif credentials and self._digest.ready:
                headers["Authorization"] = self._digest.authorization("POST", path)
            async with self._session.post(self.url, data=body, headers=headers) as response:
                await response.read()
                challenge = response.headers.get("WWW-Authenticate", "")
                if (response.status != 401 or not credentials or self._auth == "basic"
                        or not challenge.startswith("Digest")):
                    return response.status
                if self._digest.ready and "stale=true" not in challenge:
                    return response.status  # our answer was refused
                self._digest.challenged(challenge)
        return 401


def _json(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert, indent="\t").encode()


def _part(boundary: str, disposition: str, content_type: str, data: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data + b"\r\n"


def to_xml(alert: dict[str, Any]) -> bytes:
    """The notification as the terminal's XML `EventNotificationAlert`."""
    def element(name: str, value: Any) -> str:
        if isinstance(value, dict):
            return f"<{name}>" + "".join(element(k, v) for k, v in value.items()) + f"</{name}>"
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f"<{name}>{text}</{name}>"

    inner = "".join(element(k, v) for k, v in alert.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<EventNotificationAlert version="2.0" '
            f'xmlns="http://www.isapi.org/ver20/XMLSchema">{inner}</EventNotificationAlert>\n'
            ).encode()
