"""`scgw run` as a real process: SIGTERM drains the journal and leaves the will unneeded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

from gateway.core.model import DeviceEvent
from gateway.journal import Journal
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.sinks import mqtt_sink, store_sink
from gateway.supervisor import _settle
from tests.helpers import Watcher, unique_site


async def test_sigterm_publishes_everything_then_offline_and_exits_0(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("svc")
    topic = f"vendor/{site}/sos-1"
    journal_path = tmp_path / "journal.db"
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
site = "{site}"
shutdown_timeout_s = 3.0
[broker]
port = {mosquitto.port}
[store]
url = "{victoria.url}"
flush_interval_s = 5.0
[journal]
path = "{journal_path}"
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
[devices.mqtt]
topic = "{topic}"
event_key = "action"
events = {{ single = "press", double = "low_battery" }}
""")
    async with Watcher(mosquitto.port, f"sc/{site}/#", "observer") as watcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.ops.cli", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await watcher.next(lambda s: s.topic.endswith("gateway/status")
                               and s.payload == b"online", timeout=20)
            for _ in range(5):  # event class, not alarms: the store sink batches them
                await watcher.publish(topic, b'{"action": "double"}')
            for _ in range(5):
                await watcher.next(lambda s: s.topic.endswith("/event"))
            proc.send_signal(signal.SIGTERM)
            # the store's batch interval (5 s) outlasts the shutdown bound (3 s): shutdown
            # must send the batch at once
            status = await watcher.next(lambda s: s.topic.endswith("gateway/status"))
            assert status.payload == b"offline"
            assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = (await proc.stdout.read()).decode() if proc.stdout else ""
    assert "stopping: buttons released, draining the journal" in output
    async with Journal(journal_path) as journal:
        events = [e.record for e in (await journal.read_after(0, 100)).entries
                  if isinstance(e.record, DeviceEvent)]
        assert [e.type for e in events] == ["low_battery"] * 5
        assert await journal.cursor(mqtt_sink.CONSUMER) == journal.last_seq
        assert await journal.cursor(store_sink.CONSUMER) == journal.last_seq


async def test_a_task_that_swallowed_the_stop_is_asked_again(
        caplog: pytest.LogCaptureFixture) -> None:
    swallowed = asyncio.Event()

    async def deaf_once() -> None:
        # what a library on 3.11's wait_for does when an answer arrives with the stop
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(deaf_once(), name="deaf")
    await asyncio.sleep(0)
    task.cancel()
    await _settle([task], 0.05, "driver")
    assert swallowed.is_set()
    assert "driver deaf is slow to stop" in caplog.text
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), timeout=5)
    assert task.cancelled()
