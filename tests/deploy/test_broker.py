"""A real Mosquitto on the configuration the installer wrote: who may connect and publish."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from gateway.config_file import parse_config
from gateway.core.config import BROKER_MESSAGE_LIMIT
from gateway.supervisor import Gateway
from tests.deploy.brokers import FileBroker, retarget
from tests.deploy.conftest import Installation
from tests.deploy.mqtt import NOT_AUTHORIZED, Client
from tests.helpers import running

BROKER_DIR = "/etc/mosquitto/scgw"


@pytest.fixture
def broker(installation: Installation, tmp_path: Path) -> Iterator[FileBroker]:
    """Started the way Debian's package starts it: its mosquitto.conf includes conf.d/.
    One per test, so no retained message of one test reaches another."""
    workdir = tmp_path / "installed-mosquitto"
    workdir.mkdir()
    server = FileBroker(workdir)
    conf_d = workdir / "conf.d"
    conf_d.mkdir()
    (conf_d / "scgw.conf").write_text(retarget(
        installation.path("/etc/mosquitto/conf.d/scgw.conf").read_text(),
        [(f"{BROKER_DIR}/", f"{installation.root}{BROKER_DIR}/"),
         ("listener 1883 127.0.0.1\n", f"listener {server.port} 127.0.0.1\n"),
         ("listener 8883\n", f"listener {server.tls_port} 127.0.0.1\n")]))
    server.main = (f"persistence true\npersistence_location {workdir}/\n"
                   f"include_dir {conf_d}\n")
    server.start()
    yield server
    server.stop()


Connect = Callable[..., Client]


@pytest.fixture
def connect(broker: FileBroker, installation: Installation) -> Iterator[Connect]:
    """Make clients of the broker (a user's password from the installation by default)."""
    clients: list[Client] = []

    def make(user: str | None = None, password: str | None = None, *,
             tls_ca: Path | None = None, client_id: str | None = None,
             protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> Client:
        if user is not None and password is None:
            password = installation.password(user)
        port = broker.port if tls_ca is None else broker.tls_port
        client = Client(port, user, password, ca_file=tls_ca, client_id=client_id,
                        protocol=protocol)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _connected(client: Client) -> Client:
    reason = client.connect()
    assert not reason.is_failure, reason
    return client


def test_anonymous_clients_and_wrong_passwords_are_refused(connect: Connect) -> None:
    # mosquitto 2.0 answers 'not authorized' to all three, telling a guesser nothing
    assert connect().connect().value == NOT_AUTHORIZED
    assert connect("gateway", "0" * 48).connect().value == NOT_AUTHORIZED
    assert connect("nobody", "0" * 48).connect().value == NOT_AUTHORIZED
    assert not connect("gateway").connect().is_failure


def test_a_device_publishes_to_its_own_topic_only(connect: Connect) -> None:
    gateway = _connected(connect("gateway"))
    for topic in ("devices/sos-1", "zigbee/smoke-2"):
        assert not gateway.subscribe(topic).is_failure
    sos = _connected(connect("sos-1"))
    # another device's topic: mosquitto answers 'not authorized' and delivers nothing ...
    assert sos.publish("zigbee/smoke-2", b'{"smoke_ppm": 900}').value == NOT_AUTHORIZED
    assert sos.publish("sc/c1/alerts/smoke.fire/smoke-2", b"{}").value == NOT_AUTHORIZED
    # ... while its own goes through; one publisher's messages arrive in order, so the
    # first message the gateway sees shows the refused ones were not delivered before it
    assert sos.publish("devices/sos-1", b'{"action": "single"}').value == 0
    message = gateway.next_message()
    assert (message.topic, message.payload) == ("devices/sos-1", b'{"action": "single"}')
    assert gateway.messages.empty()


def test_a_device_cannot_take_the_gateways_client_id(
        connect: Connect, installation: Installation) -> None:
    gateway = _connected(connect("gateway", client_id="scgw-c1"))
    assert not gateway.subscribe("devices/sos-1").is_failure
    # on the LAN a device's login asks for the gateway's id: it gets its user name instead
    ca = installation.path("/etc/scgw/ca.crt")
    intruder = _connected(connect("sos-1", client_id="scgw-c1", tls_ca=ca))
    # locally, a tool logged in as the gateway (scgw doctor) keeps an id of its own
    doctor = _connected(connect("gateway", client_id="scgw-c1-doctor"))
    assert intruder.publish("devices/sos-1", b'{"action": "single"}').value == 0
    assert gateway.next_message().topic == "devices/sos-1"
    assert (gateway.disconnects, intruder.disconnects, doctor.disconnects) == (0, 0, 0)


def test_the_broker_refuses_oversized_messages(connect: Connect) -> None:
    gateway = _connected(connect("gateway"))
    assert not gateway.subscribe("devices/sos-1").is_failure
    # MQTT 3.1.1, as most devices speak it: acknowledged and dropped, the device goes on
    sos = _connected(connect("sos-1", protocol=mqtt.MQTTv311))
    assert sos.publish("devices/sos-1", b"x" * (BROKER_MESSAGE_LIMIT + 1)).value == 0
    assert sos.publish("devices/sos-1", b'{"action": "single"}').value == 0
    assert gateway.next_message().payload == b'{"action": "single"}'


def test_the_duty_console_reads_everything_and_writes_only_acks(connect: Connect) -> None:
    gateway = _connected(connect("gateway"))
    assert not gateway.subscribe("sc/c1/#").is_failure
    console = _connected(connect("duty-console"))
    assert not console.subscribe("sc/c1/#").is_failure
    telemetry = "sc/c1/smoke/smoke-2/telemetry"
    assert console.publish(telemetry, b'{"smoke_ppm": 0}').value == NOT_AUTHORIZED
    assert console.publish("sc/c1/alerts/elder.sos/sos-1", b"{}").value == NOT_AUTHORIZED
    ack = "sc/c1/alerts/elder.sos/sos-1/ack"
    assert console.publish(ack, b'{"by": "duty office"}').value == 0
    assert gateway.next_message().topic == ack
    # and the console hears what the gateway publishes
    assert gateway.publish(telemetry, b'{"smoke_ppm": 3}').value == 0
    seen = [console.next_message().topic for _ in range(2)]
    assert seen == [ack, telemetry]


def test_a_client_trusting_the_generated_ca_connects_over_tls(
        connect: Connect, installation: Installation, tmp_path: Path) -> None:
    ca = installation.path("/etc/scgw/ca.crt")
    console = _connected(connect("duty-console", tls_ca=ca))
    assert not console.subscribe("sc/c1/#").is_failure
    # a client trusting another CA refuses the broker
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=another CA", "-keyout", str(tmp_path / "other.key"),
                    "-out", str(tmp_path / "other.crt")], check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect("duty-console", tls_ca=tmp_path / "other.crt").connect()


async def test_the_gateway_works_within_its_acl(
        broker: FileBroker, installation: Installation, connect: Connect,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed configuration, on this broker: a device's press becomes an alert the
    console sees, and the console's acknowledgement reaches the gateway."""
    raw = tomllib.loads(installation.seen_config(tmp_path).read_text())
    raw["broker"]["port"] = broker.port
    raw["store"]["url"] = "http://127.0.0.1:9"  # no store: points wait in the journal
    raw["journal"]["path"] = str(tmp_path / "journal.db")
    raw["shutdown_timeout_s"] = 1.0
    for name, value in installation.secrets().items():  # what the unit's EnvironmentFile gives
        monkeypatch.setenv(name, value)
    config = parse_config(raw, installation.path("/etc/scgw/gateway.toml"), os.environ)
    console = _connected(connect("duty-console"))
    assert not console.subscribe("sc/c1/#").is_failure

    async def console_sees(match: Callable[[mqtt.MQTTMessage], bool]) -> mqtt.MQTTMessage:
        while True:
            message = await asyncio.to_thread(console.next_message)
            if match(message):
                return message

    async with running(Gateway(config)):
        await console_sees(lambda m: m.topic == "sc/c1/gateway/status"
                           and m.payload == b"online")
        sos = _connected(connect("sos-1"))
        assert sos.publish("devices/sos-1", b'{"action": "single"}').value == 0
        await console_sees(lambda m: m.topic == "sc/c1/elder_button/sos-1/event")
        alert = await console_sees(lambda m: m.topic == "sc/c1/alerts/elder.sos/sos-1")
        assert json.loads(alert.payload)["state"] == "firing"
        ack = console.publish("sc/c1/alerts/elder.sos/sos-1/ack", b'{"by": "duty office"}')
        assert ack.value == 0
        alert = await console_sees(lambda m: m.topic == "sc/c1/alerts/elder.sos/sos-1")
        assert json.loads(alert.payload)["state"] == "acknowledged"


@pytest.mark.skipif(os.geteuid() != 0, reason="mosquitto drops privileges only when root")
def test_mosquitto_reads_the_installed_files_as_its_own_user(installation: Installation) -> None:
    """The packaged broker drops root before it reads the password file, the ACL and the
    key: with the installer's owners and modes, the mosquitto user can read them."""
    # pytest's directories are root's alone: this one lets the mosquitto user through
    base = Path(tempfile.mkdtemp(prefix="scgw-broker-"))
    try:
        base.chmod(0o755)
        broker_dir = base / "scgw"
        subprocess.run(["cp", "-a", str(installation.path(BROKER_DIR)), str(broker_dir)],
                       check=True)
        server = FileBroker(base / "run", drop_privileges=True)
        server.workdir.mkdir()
        data = base / "data"
        data.mkdir()
        shutil.chown(data, "mosquitto", "mosquitto")
        conf_d = base / "conf.d"
        conf_d.mkdir()
        (conf_d / "scgw.conf").write_text(retarget(
            installation.path("/etc/mosquitto/conf.d/scgw.conf").read_text(),
            [(f"{BROKER_DIR}/", f"{broker_dir}/"),
             ("listener 1883 127.0.0.1\n", f"listener {server.port} 127.0.0.1\n"),
             ("listener 8883\n", f"listener {server.tls_port} 127.0.0.1\n")]))
        for path in (base, conf_d, conf_d / "scgw.conf"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        server.main = f"persistence true\npersistence_location {data}/\ninclude_dir {conf_d}\n"
        server.start()
        try:
            device = Client(server.tls_port, "sos-1", installation.password("sos-1"),
                            ca_file=installation.path("/etc/scgw/ca.crt"))
            try:
                assert not device.connect().is_failure  # password file and key read
                assert device.publish("zigbee/smoke-2", b"{}").value == NOT_AUTHORIZED  # ACL
            finally:
                device.close()
        finally:
            server.stop()
        log = (server.workdir / "mosquitto.log").read_text()
        assert "Warning" not in log, log
    finally:
        shutil.rmtree(base)
