"""The city's test rig: names apart per test, a hub's configuration, a hub in the test's own
event loop, a client of the cluster (hub processes and the oracle: bench/city_rig.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from bench.city_rig import HubProcess, toml
from gateway.core.city import CitySubject
from gateway.core.model import Alert, DeviceEvent, Record, encode
from gateway.ops.private_servers import NatsCluster, free_port
from hub.config import HubConfig, parse_hub_config
from hub.provision import provision
from hub.service import Hub


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
        # a test cluster's nodes keep at most 2 GB each, and every test has a stream of its
        # own (a few hundred kB each): 40 fit
        "stream": {"name": names.stream, "subjects": [f"sc.{names.district}.>"],
                   "max_gb": 0.05},
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
async def city_connection(cluster: NatsCluster) -> AsyncIterator[Client]:
    client = await nats.connect(servers=cluster.urls, reconnect_time_wait=0.1,
                                max_reconnect_attempts=-1)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def city_client(cluster: NatsCluster) -> AsyncIterator[JetStreamContext]:
    async with city_connection(cluster) as client:
        yield client.jetstream()


async def publish(js: JetStreamContext, district: str, site: str, record: Record,
                  msg_id: str | None = None) -> None:
    """`record` as a compound sends it, its id the message id."""
    kind = getattr(record, "kind", "")
    type_ = (record.state.value if isinstance(record, Alert) else
             record.type if isinstance(record, DeviceEvent) else "reading")
    subject = CitySubject(district, site, str(kind), getattr(record, "device", ""), type_)
    await js.publish(str(subject), encode(record),
                     headers={"Nats-Msg-Id": msg_id or f"{site}.{record.id}.{type_}"})


__all__ = ["HubProcess", "toml"]
