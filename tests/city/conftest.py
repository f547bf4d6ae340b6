"""One real three-node NATS JetStream cluster for the city's tests; each test keeps apart by
a stream, consumer and bucket of its own (`city` fixture), and leaves every node running."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops.private_servers import NatsCluster
from tests.city.rig import CityNames

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
    yield CityNames.numbered(next(_names))
    for node in nats_cluster.nodes:
        if not node.running:
            node.start()
    nats_cluster.wait_healthy()
