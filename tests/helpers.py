"""Shared test helpers: configs, a running gateway, an MQTT watcher, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from gateway.config_file import parse_config
from gateway.core.config import GatewayConfig
from gateway.core.model import DeviceEvent, Record
from gateway.journal import Journal, NotJournalledError
from gateway.supervisor import Gateway

_sites = itertools.count(1)


def unique_site(prefix: str = "t") -> str:
    return f"{prefix}{next(_sites)}"


IN_PROCESS_MEMORY_MB = 8192  # tests that bound memory set limits.memory_mb themselves


def make_config(
    tmp_path: Path,
    *,
    site: str,
    broker_port: int = 1883,
    store_url: str = "http://127.0.0.1:9",
    devices: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> GatewayConfig:
    raw: dict[str, Any] = {
        "site": site,
        "gpio_factory": "mock",
        "broker": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.1,
                   "reconnect_max_s": 0.5, "publish_timeout_s": 5},
        "store": {"url": store_url, "flush_interval_s": 0.2, "retry_min_s": 0.1,
                  "retry_max_s": 0.5},
        "journal": {"path": str(tmp_path / "journal.db")},
        "devices": devices if devices is not None else [elder_gpio("elder-1", pin=17)],
    }
    # the gateway runs inside the test process, whose resident memory is the whole suite's
    # (a worker that ran the push storm holds some 300 MiB): the default ceiling of 256 MiB
    # would put every later gateway in its tight reading, dropping QoS 0 messages
    extra["limits"] = {"memory_mb": IN_PROCESS_MEMORY_MB, **extra.get("limits", {})}
    raw.update(extra)
    return parse_config(raw, tmp_path / "test.toml", os.environ)


def elder_gpio(device: str, pin: int, led_pin: int | None = None, **gpio: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"pin": pin, "debounce_ms": 0, "long_press_s": 2.0, **gpio}
    if led_pin is not None:
        settings["led_pin"] = led_pin
    return {"id": device, "kind": "elder_button", "transport": "gpio",
            "location": {"building": "3", "unit": "1", "floor": 5}, "gpio": settings}


def sos_mqtt(device: str, topic: str, heartbeat_s: float = 0) -> dict[str, Any]:
    return {"id": device, "kind": "elder_button", "transport": "mqtt", "heartbeat_s": heartbeat_s,
            "mqtt": {"topic": topic, "event_key": "action",
                     "events": {"single": "press", "hold": "cancel"},
                     "readings": ["battery"]}}


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    task = asyncio.create_task(gateway.run(), name="test.gateway")
    ready = asyncio.ensure_future(gateway.ready.wait())
    await asyncio.wait((task, ready), timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what stopped it
    assert gateway.ready.is_set(), "gateway did not become ready"
    try:
        yield gateway
    finally:
        gateway.stop()
        # every step of a shutdown is bounded; a loaded machine may still need a while
        await asyncio.wait_for(task, timeout=4 * gateway.config.shutdown_timeout_s + 20)


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.02) -> None:
    """Wait (bounded) for a condition the system under test makes true by itself, looking
    every `interval` seconds."""
    bound = asyncio.timeout(timeout)
    try:
        async with bound:
            while True:
                result = predicate()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        if not bound.expired():
            raise  # the predicate's own, not the wait's end
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def intake_open(gateway: Gateway, timeout: float = 10.0) -> None:
    """Wait (bounded) until every device can reach the gateway (`Gateway.intake_open`)."""
    try:
        async with asyncio.timeout(timeout):
            await gateway.intake_open()
    except TimeoutError:
        raise AssertionError(
            f"devices cannot reach the gateway after {timeout} s: broker connected "
            f"{gateway.link.connected}, counters {gateway.counters.snapshot()}") from None


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A separate MQTT client that records what it receives on a filter."""

    def __init__(self, port: int, topic_filter: str, name: str = "watcher") -> None:
        self._port = port
        self._filter = topic_filter
        self._name = name
        self.queue: asyncio.Queue[Seen] = asyncio.Queue()
        self.client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self.client = aiomqtt.Client("127.0.0.1", self._port,
                                     identifier=f"{self._name}-{next(_sites)}")
        await self.client.__aenter__()
        await self.client.subscribe(self._filter, qos=1)
        self._task = asyncio.create_task(self._collect(), name=f"test.{self._name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        assert self.client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            await self.queue.put(Seen(str(message.topic), payload, message.retain))

    async def next(self, match: Callable[[Seen], bool], timeout: float = 10.0) -> Seen:
        async with asyncio.timeout(timeout):
            while True:
                seen = await self.queue.get()
                if match(seen):
                    return seen

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=qos)


async def status_and_event(watcher: Watcher, device: str, state: str) -> None:
    """The device's status and its event saying `state`, in whichever order they come: the
    status is published at once, the event once journalled (two topics, no order between
    them)."""
    waiting = {"status", "event"}

    def says(seen: Seen) -> bool:
        where = seen.topic.rpartition("/")[2]
        if not seen.topic.endswith(f"/{device}/{where}") or where not in waiting:
            return False
        if where == "status":
            return seen.payload == state.encode()
        return msgspec.json.decode(seen.payload, type=DeviceEvent).type == state

    while waiting:
        seen = await watcher.next(says)
        waiting.discard(seen.topic.rpartition("/")[2])


class Refusing:
    """An intake's refusals as a journal that cannot write gives them: the next `refuse`
    commits fail with a write error; what they carried is kept in `refused`."""

    def __init__(self) -> None:
        self.refuse = 0
        self.refused: list[DeviceEvent] = []

    def refusing(self, events: Sequence[DeviceEvent]) -> None:
        """Raise as a refused commit does, while refusals are left."""
        if self.refuse:
            self.refuse -= 1
            self.refused.extend(events)
            raise NotJournalledError("write_failed", "disk I/O error")


def refuse_commits(monkeypatch: pytest.MonkeyPatch, times: int,
                   which: Callable[[list[Record]], bool]) -> list[list[Record]]:
    """The journal thread's next `times` commits whose records `which` picks fail with a
    write error (a disk's I/O error cannot be made on demand); returns, as they come, the
    records of each commit refused."""
    refused: list[list[Record]] = []
    commit = Journal._commit_sync

    def failing(journal: Journal, group: Any, lazy: Any) -> Any:
        records = [r for job in group for r in job.records]
        if len(refused) < times and which(records):
            refused.append(records)
            raise sqlite3.OperationalError("disk I/O error")
        return commit(journal, group, lazy)

    monkeypatch.setattr(Journal, "_commit_sync", failing)
    return refused
