from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops.private_servers import InfluxDB1, Mosquitto, VictoriaMetrics


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """One real VictoriaMetrics for the session; tests keep apart by site label."""
    store = VictoriaMetrics(tmp_path_factory.mktemp("victoria-metrics"))
    store.start()
    yield store
    store.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto per test, so a test may kill and restart it."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that saves its sessions every second, so they outlive a SIGKILL."""
    broker = Mosquitto(tmp_path / "mosquitto-persistent", persistence=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """One real InfluxDB 1.x (Debian's influxd) for the session; tests use own databases."""
    store = InfluxDB1(tmp_path_factory.mktemp("influxdb1"))
    store.start(timeout=30)
    yield store
    store.stop()
