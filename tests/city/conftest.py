"""One real three-node NATS JetStream cluster for the city's tests; each test keeps apart by
a stream, consumer and bucket of its own (`city` fixture), leaves every node running, and
deletes its stream and bucket: a node that restarts brings every stream's replica up to date
before the cluster is healthy, one stream after another, so the ones left behind by earlier
tests made a later test's restart wait for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import nats.js.errors
import pytest

from gateway.ops.private_servers import NatsCluster
from tests.city.rig import CityNames, city_client

_names = itertools.count(1)


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def city(nats_cluster: NatsCluster, tmp_path: Path) -> Iterator[CityNames]:
    """This test's names in the cluster; every node it killed is running again after."""
    names = CityNames.numbered(next(_names))
    yield names
    for node in nats_cluster.nodes:
        if not node.running:
            node.start()
    nats_cluster.wait_healthy()
    asyncio.run(asyncio.wait_for(_forget(nats_cluster, names), 30))


async def _forget(cluster: NatsCluster, names: CityNames) -> None:
    """Delete the test's stream and its alert bucket's (a bucket is the stream KV_<name>)."""
    async with city_client(cluster) as js:
        for stream in (names.stream, f"KV_{names.bucket}"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
