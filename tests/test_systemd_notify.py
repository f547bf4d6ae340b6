"""The gateway speaks sd_notify: READY once running, WATCHDOG pings, STATUS, STOPPING."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.ops.private_servers import Mosquitto
from gateway.systemd_notify import SystemdNotifier, watchdog_interval
from tests.helpers import unique_site


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notification socket."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, str(path)
    sock.close()


class Messages:
    """What systemd would have received, one message per datagram."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.seen: list[dict[str, str]] = []

    async def next(self, match: Callable[[dict[str, str]], bool],
                   timeout: float = 20.0) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self._sock, 4096)
                fields = dict(line.split("=", 1) for line in data.decode().splitlines())
                self.seen.append(fields)
                if match(fields):
                    return fields


async def test_gateway_reports_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path, mosquitto: Mosquitto, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    site = unique_site("sd")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
site = "{site}"
shutdown_timeout_s = 2.0
[broker]
port = {mosquitto.port}
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
""")
    # 0.4 s watchdog: a ping every 0.2 s
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    messages = Messages(sock)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        ready = await messages.next(lambda m: "READY" in m)
        assert ready["READY"] == "1"
        assert ready["STATUS"].startswith(f"site {site}: 0/0 device(s) online")
        assert messages.seen == [ready], "READY=1 is the first thing systemd hears"
        # pings keep coming, and STATUS follows the broker connection
        await messages.next(lambda m: "broker connected" in m.get("STATUS", "")
                            and m.get("WATCHDOG") == "1")
        await messages.next(lambda m: m.get("WATCHDOG") == "1")
        proc.send_signal(signal.SIGTERM)
        stopping = await messages.next(lambda m: "STOPPING" in m)
        assert stopping["STOPPING"] == "1"
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not any("READY" in m for m in messages.seen[1:]), "READY=1 is sent once"


async def test_abstract_socket_address() -> None:
    name = f"scgw-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        try:
            notifier.send("READY=1", "STATUS=up")
        finally:
            notifier.close()
        sock.settimeout(10)
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_no_notify_socket_means_no_notifications() -> None:
    assert not SystemdNotifier.from_environ({}).enabled
    assert not SystemdNotifier.from_environ({"NOTIFY_SOCKET": ""}).enabled


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"))
    with contextlib.closing(notifier):
        notifier.send("WATCHDOG=1")
        notifier.send("WATCHDOG=1")
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_the_timeout(environ: dict[str, str],
                                               expected: float | None) -> None:
    assert watchdog_interval(environ) == expected
