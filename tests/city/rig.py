"""The city's test rig: names apart per test, a hub's configuration, hub processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.js.client import JetStreamContext

from gateway.core.city import CitySubject
from gateway.core.model import Alert, DeviceEvent, Record, encode
from gateway.ops.private_servers import NatsCluster, free_port
from hub.config import HubConfig, parse_hub_config
from hub.provision import provision
from hub.service import Hub

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CityNames:
    """A stream, consumer and alert bucket of one test, over the subjects of its district."""

    district: str
    stream: str
    bucket: str

    @classmethod
    def numbered(cls, n: int) -> CityNames:
        return cls(district=f"d{n}-{os.getpid()}", stream=f"SC{n}", bucket=f"alerts{n}")


def hub_raw(cluster: NatsCluster, names: CityNames, store_url: str, **extra: Any
            ) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "nats": {"servers": cluster.urls, "reconnect_wait_s": 0.1},
        # a test cluster's nodes keep at most 2 GB each
        "stream": {"name": names.stream, "subjects": [f"sc.{names.district}.>"],
                   "max_gb": 0.2},
        "consumer": {"ack_wait_s": 2.0, "fetch_wait_s": 0.5},
        "alerts": {"bucket": names.bucket},
        "store": {"url": store_url, "retry_min_s": 0.05, "retry_max_s": 0.5},
        "board": {"port": free_port()},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


def hub_config(cluster: NatsCluster, names: CityNames, store_url: str, **extra: Any
               ) -> HubConfig:
    return parse_hub_config(hub_raw(cluster, names, store_url, **extra), Path("hub.toml"), {})


def toml(raw: dict[str, Any]) -> str:
    """`raw` (tables of scalars and lists) as TOML."""
    out = []
    for table, values in raw.items():
        out.append(f"[{table}]")
        out += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(out) + "\n"


class HubProcess:
    """`scgw hub run` as a process of its own, killable like a crashed machine."""

    def __init__(self, workdir: Path, raw: dict[str, Any], name: str) -> None:
        self.name = name
        self.port = int(raw["board"]["port"])
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / f"{name}.toml"
        self.config_file.write_text(toml(raw))
        self.log = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.ops.cli", "hub", "run", "--config",
                 str(self.config_file), "--name", self.name],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

    def status(self) -> dict[str, int] | None:
        """The process's counters (blocking: from a thread); None while it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status",
                                        timeout=1) as resp:
                counters: dict[str, int] = json.loads(resp.read())["counters"]
                return counters
        except OSError:
            return None

    def board(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/board",
                                    timeout=2) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer

    async def up(self, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while await asyncio.to_thread(self.status) is None:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@contextlib.asynccontextmanager
async def running_hub(config: HubConfig, name: str = "hub") -> AsyncIterator[Hub]:
    """A hub in this event loop, its stream, consumer and bucket made first."""
    await provision(config, {})
    hub = Hub(config, env={}, name=name)
    task = asyncio.create_task(hub.run(), name=f"test.{name}")
    ready = asyncio.ensure_future(hub.ready.wait())
    await asyncio.wait((task, ready), timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert hub.ready.is_set(), f"{name} did not become ready"
    try:
        yield hub
    finally:
        hub.stop()
        await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def city_client(cluster: NatsCluster) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(servers=cluster.urls, reconnect_time_wait=0.1,
                                max_reconnect_attempts=-1)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def publish(js: JetStreamContext, district: str, site: str, record: Record,
                  msg_id: str | None = None) -> None:
    """`record` as a compound sends it, its id the message id."""
    kind = getattr(record, "kind", "")
    type_ = (record.state.value if isinstance(record, Alert) else
             record.type if isinstance(record, DeviceEvent) else "reading")
    subject = CitySubject(district, site, str(kind), getattr(record, "device", ""), type_)
    await js.publish(str(subject), encode(record),
                     headers={"Nats-Msg-Id": msg_id or f"{site}.{record.id}.{type_}"})
