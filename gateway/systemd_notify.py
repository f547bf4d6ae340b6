"""Tell systemd how the gateway is doing: READY, watchdog pings, STATUS and STOPPING.

The sd_notify protocol without libsystemd: one datagram per message to the Unix socket
named in $NOTIFY_SOCKET (a leading '@' names the abstract namespace). A gateway not started
by systemd as `Type=notify` has no $NOTIFY_SOCKET, and then nothing is sent.

The watchdog pings come from a task on the gateway's event loop, so a loop that is stuck
(a blocking call, a busy coroutine) stops them and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from gateway.core.waiting import first_of
from gateway.status import Status

if TYPE_CHECKING:
    from gateway.supervisor import Gateway

log = logging.getLogger(__name__)

# STATUS= is refreshed this often when no watchdog interval sets the pace
STATUS_INTERVAL_S = 15.0


class SystemdNotifier:
    """Sends sd_notify messages to one socket; does nothing without an address."""

    def __init__(self, address: str | None) -> None:
        self._address = _socket_address(address) if address else None
        self._notify_socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *assignments: str) -> None:
        """Send `KEY=value` lines as one message. Never blocks: systemd reads its socket
        promptly, and a message it cannot take now is not worth stalling the loop for."""
        if self._address is None:
            return
        message = "\n".join(assignments).encode()
        try:
            if self._notify_socket is None:
                self._notify_socket = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._notify_socket.setblocking(False)
            self._notify_socket.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:  # once: a broken socket would otherwise log every ping
                log.warning("cannot notify systemd at %r: %s", self._address, exc)
                self._failed = True
            return
        self._failed = False

    def close(self) -> None:
        if self._notify_socket is not None:
            self._notify_socket.close()
            self._notify_socket = None


def _socket_address(address: str) -> str | bytes:
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC, as sd_watchdog_enabled advises), or
    None when systemd watches no process or watches another one ($WATCHDOG_PID)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return value / 2_000_000 if value > 0 else None


def status_line(gateway: Gateway) -> str:
    """One line for `systemctl status`: devices online, broker, what is left to deliver."""
    devices = gateway.config.devices
    online = sum(1 for d in devices if gateway.board.get(d.id) is Status.ONLINE)
    broker = "connected" if gateway.link.connected else "disconnected"
    backlog = gateway.journal.last_seq - min(gateway.sink_cursors().values())
    return (f"site {gateway.config.site}: {online}/{len(devices)} device(s) online, "
            f"broker {broker}, {backlog} record(s) to deliver")


@contextlib.asynccontextmanager
async def reporting_to_systemd(gateway: Gateway,
                               environ: Mapping[str, str] | None = None
                               ) -> AsyncIterator[None]:
    """While the body runs `gateway`, keep systemd informed (when systemd asked for it)."""
    notifier = SystemdNotifier.from_environ(environ)
    if not notifier.enabled:
        yield
        return
    task = asyncio.create_task(_report(gateway, notifier, watchdog_interval(environ)),
                               name="gw.systemd")
    task.add_done_callback(_log_failure)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # its cancellation is ours to ignore, not the caller's
        notifier.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # without pings systemd will restart the service: say why they stopped
        log.error("systemd notifications stopped", exc_info=task.exception())


async def _report(gateway: Gateway, notifier: SystemdNotifier, interval: float | None) -> None:
    stopping = gateway.stopping
    ping = ("WATCHDOG=1",) if interval is not None else ()
    tick = interval or STATUS_INTERVAL_S
    await first_of(gateway.ready, stopping)
    if gateway.ready.is_set():
        notifier.send("READY=1", f"STATUS={status_line(gateway)}", *ping)
    while not stopping.is_set():
        sleep = asyncio.ensure_future(asyncio.sleep(tick))
        try:
            await first_of(stopping, sleep)
        finally:
            sleep.cancel()
        if not stopping.is_set():
            notifier.send(f"STATUS={status_line(gateway)}", *ping)
    # systemd now expects the process to exit within TimeoutStopSec
    notifier.send("STOPPING=1", "STATUS=stopping: delivering what the journal holds", *ping)
    while ping:  # a drain that takes a while is still a live loop
        await asyncio.sleep(tick)
        notifier.send(*ping)
