"""The running gateway reports whether the system clock is synchronised, and notices when
NTP catches up (a Pi that booted without network)."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock_sync import EARLIEST, ClockState, trustworthy
from gateway.core.clock import ManualClock
from gateway.ops.private_servers import Mosquitto, free_port
from gateway.supervisor import CLOCK_CHECK_S, Gateway
from tests.helpers import eventually, make_config, running, unique_site


class KernelClock:
    """What adjtimex would say, set by the test."""

    def __init__(self, state: ClockState) -> None:
        self.state = state
        self.reads = 0

    def __call__(self) -> ClockState:
        self.reads += 1
        return self.state


def _state(synchronised: bool, now: datetime | None = None) -> ClockState:
    return ClockState(now=now or datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
                      synchronised=synchronised, max_error_s=0.01)


def test_a_clock_is_trusted_only_when_synchronised_and_set() -> None:
    assert trustworthy(_state(True))
    assert not trustworthy(_state(False))
    # synchronised as the kernel sees it, yet never set: a Pi image's build date
    assert not trustworthy(_state(True, datetime(2023, 5, 1, tzinfo=UTC)))
    assert trustworthy(_state(True, EARLIEST))


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


async def _serving(port: int) -> None:
    async def up() -> bool:
        try:
            await asyncio.to_thread(_metrics, port)
        except OSError:
            return False
        return True

    await eventually(up, what="/metrics served")


async def test_an_unsynchronised_clock_is_reported_until_ntp_syncs(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    kernel = KernelClock(_state(False))
    clock = ManualClock()
    port = free_port()
    config = make_config(tmp_path, site=unique_site("clk"), broker_port=mosquitto.port,
                         metrics={"host": "127.0.0.1", "port": port}, shutdown_timeout_s=0.3)
    async with running(Gateway(config, clock=clock, clock_probe=kernel)) as gateway:
        await eventually(lambda: gateway.clock_synchronised is False, what="unsynchronised")
        await _serving(port)
        assert gateway.snapshot().clock_synchronised is False
        assert "scgw_clock_synchronised 0.0" in await asyncio.to_thread(_metrics, port)
        assert "system clock NOT synchronised" in caplog.text

        kernel.state = _state(True)  # NTP answered
        reads = kernel.reads
        clock.advance(CLOCK_CHECK_S - 1)
        await eventually(lambda: gateway.runner.idle, what="idle")
        assert kernel.reads == reads  # not read again before its interval
        clock.advance(1)
        await eventually(lambda: gateway.clock_synchronised is True, what="synchronised")
        assert "scgw_clock_synchronised 1.0" in await asyncio.to_thread(_metrics, port)
        assert "system clock synchronised" in caplog.text


async def test_an_unknown_clock_state_is_not_reported_as_a_problem(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    def no_adjtimex() -> ClockState:
        raise OSError("adjtimex(2) is Linux-only")

    port = free_port()
    config = make_config(tmp_path, site=unique_site("clk"), broker_port=mosquitto.port,
                         metrics={"host": "127.0.0.1", "port": port}, shutdown_timeout_s=0.3)
    async with running(Gateway(config, clock_probe=no_adjtimex)) as gateway:
        await _serving(port)
        text = await asyncio.to_thread(_metrics, port)
        assert "scgw_broker_connected" in text
        assert "scgw_clock_synchronised" not in text
        assert gateway.snapshot().clock_synchronised is None
        assert gateway.counters.get("task_restarts", task="gw.clock.sync") == 0
