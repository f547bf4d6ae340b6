"""The local bus secured: TLS with server-certificate verification, credentials, no secrets
in the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.config import GatewayConfig
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import eventually, make_config, running, unique_site
from tests.pki import issue, make_ca

PASSWORD = "s3cret-Pa55word-not-for-logs"


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_crt, _ = make_ca(tmp_path / "ca", "compound test CA")
    other_ca, _ = make_ca(tmp_path / "other", "someone else's CA")
    cert, key = issue(tmp_path / "ca", "server", "localhost", san="DNS:localhost,IP:127.0.0.1")
    return {"ca": ca_crt, "cert": cert, "key": key, "other_ca": other_ca}


@pytest.fixture
def secure_broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", tls=(pki["ca"], pki["cert"], pki["key"]),
                       passwords={"gateway": PASSWORD})
    broker.start()
    yield broker
    broker.stop()


def _config(tmp_path: Path, port: int, ca: Path, monkeypatch: pytest.MonkeyPatch,
            password: str = PASSWORD) -> GatewayConfig:
    monkeypatch.setenv("SCGW_TEST_MQTT_PASSWORD", password)
    return make_config(
        tmp_path, site=unique_site("tls"), shutdown_timeout_s=0.3,
        broker={"host": "127.0.0.1", "port": port, "username": "gateway",
                "password_env": "SCGW_TEST_MQTT_PASSWORD", "tls": {"ca_file": str(ca)},
                "reconnect_min_s": 0.1, "reconnect_max_s": 0.3})


async def test_tls_with_credentials_connects(tmp_path: Path, secure_broker: Mosquitto,
                                             pki: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, secure_broker.port, pki["ca"], monkeypatch)
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected over TLS")


async def test_a_broker_with_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, secure_broker: Mosquitto, pki: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(tmp_path, secure_broker.port, pki["other_ca"], monkeypatch)
    caplog.set_level(logging.DEBUG)
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.counters.get("mqtt_disconnects") >= 2,
                         what="connection attempts refused")
        assert not gateway.link.connected
    assert "certificate verify failed" in caplog.text
    assert PASSWORD not in caplog.text


async def test_wrong_password_is_refused_and_never_logged(
    tmp_path: Path, secure_broker: Mosquitto, pki: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wr0ng-pa55word-also-secret"
    config = _config(tmp_path, secure_broker.port, pki["ca"], monkeypatch, password=wrong)
    caplog.set_level(logging.DEBUG)
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.counters.get("mqtt_disconnects") >= 2,
                         what="connection attempts refused")
        assert not gateway.link.connected
    assert "unavailable" in caplog.text
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text
