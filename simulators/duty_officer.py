"""A simulated duty officer: watches the alert topics and acknowledges firing alerts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import aiomqtt
import msgspec

from gateway.core.model import Alert, AlertState
from gateway.core.topics import ROOT


@dataclass(frozen=True, slots=True)
class ConsoleLogin:
    """The console's address and an officer's account on it."""

    url: str  # e.g. http://127.0.0.1:8088
    name: str
    password: str


class DutyOfficer:
    """Yields every alert state seen on `sc/{site}/alerts/+/+` and acks firing ones: on MQTT,
    or through the console's API as a person at its board does when `console` is given."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        name: str = "duty-office",
        ack_after_s: float | None = 2.0,  # None: only watch
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        console: ConsoleLogin | None = None,
    ) -> None:
        self._console = console
        self._host = host
        self._port = port
        self._site = site
        self.name = name
        self._ack_after_s = ack_after_s
        self._sleep = sleep
        self._acked: set[str] = set()

    async def watch(self) -> AsyncIterator[Alert]:
        async with aiomqtt.Client(self._host, self._port,
                                  identifier=f"sim-{self.name}") as client:
            await client.subscribe(f"{ROOT}/{self._site}/alerts/+/+", qos=1)
            pending: set[asyncio.Task[None]] = set()
            async for message in client.messages:
                if not isinstance(message.payload, bytes):
                    continue
                alert = msgspec.json.decode(message.payload, type=Alert)
                yield alert
                if (self._ack_after_s is not None and alert.state is AlertState.FIRING
                        and alert.id not in self._acked):
                    self._acked.add(alert.id)
                    task = asyncio.create_task(self._ack(client, str(message.topic), alert),
                                               name=f"sim[{self.name}].ack")
                    pending.add(task)
                    task.add_done_callback(pending.discard)

    async def _ack(self, client: aiomqtt.Client, topic: str, alert: Alert) -> None:
        assert self._ack_after_s is not None
        await self._sleep(self._ack_after_s)
        if self._console is not None:
            await acknowledge_on_console(self._console, alert.id, "on my way")
            return
        await client.publish(f"{topic}/ack", msgspec.json.encode({"by": self.name}), qos=1)


async def acknowledge_on_console(login: ConsoleLogin, alert_id: str, note: str) -> None:
    """Log in to the console, acknowledge `alert_id` with `note`, log out; raises
    RuntimeError with the console's answer when a step is refused."""
    # unsafe: keep the cookies of an IP address (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(login.url + "/login") as response:
            form = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', form)
        if found is None:
            raise RuntimeError(f"no login form at {login.url}/login")
        async with http.post(login.url + "/login", allow_redirects=False, data={
                "name": login.name, "password": login.password,
                "csrf": found.group(1)}) as response:
            if response.status != 303:
                raise RuntimeError(f"login as {login.name} refused: {response.status}")
        async with http.get(login.url + "/") as response:
            token = re.search(r'data-csrf="([^"]+)"', await response.text())
        if token is None:
            raise RuntimeError("no CSRF token on the board page")
        headers = {"X-CSRF-Token": token.group(1)}
        async with http.post(f"{login.url}/api/alerts/{alert_id}/ack", json={"note": note},
                             headers=headers) as response:
            if response.status not in (200, 202):
                raise RuntimeError(f"acknowledgement refused: {response.status} "
                                   f"{await response.text()}")
        async with http.post(login.url + "/logout", headers=headers):
            pass
