"""Ports for the private servers: drawn below the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.ops import private_servers
from gateway.ops.private_servers import PORTS_FROM, free_port


def test_a_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    """An outgoing connection's source port comes from the ephemeral range: a server's port
    drawn there could be taken between the draw and the server's bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(PORTS_FROM <= port < low for port in ports)
    assert len(ports) > 40  # drawn at random, not handed out in a row
    for port in list(ports)[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_taken_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
            other.bind(("127.0.0.1", 0))
            free = other.getsockname()[1]
        draws = iter([busy, busy, free])
        monkeypatch.setattr(private_servers._draw, "randrange",
                            lambda start, stop: next(draws))
        assert free_port() == free
