"""deploy/docker-compose.yml agrees with the installer: ports, paths, volumes, the gateway's
configuration and the broker's. No container runs: the compose file is read, and its
broker-init job runs on this machine against a real Mosquitto."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config_file import load_config
from tests.deploy.brokers import FileBroker, retarget
from tests.deploy.conftest import REPO, Installation, env_file
from tests.deploy.mqtt import NOT_AUTHORIZED, Client

DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
BROKER_PATH = "/mosquitto/config/scgw"  # where the compose broker finds broker-init's files


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a path relative to deploy/)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def _published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, or '' for every address; host port)."""
    ports = {}
    for spec in service["ports"]:
        *host, container = spec.split(":")
        address = host[0] if len(host) == 2 else ""
        ports[int(container)] = (address, int(host[-1]))
    return ports


def _installed_listeners(installation: Installation) -> dict[int, str]:
    """The installed broker's listeners: port -> bind address ('' for every address)."""
    text = installation.path("/etc/mosquitto/conf.d/scgw.conf").read_text()
    return {int(m[1]): m[2] for m in re.finditer(r"^listener (\d+) ?(\S*)$", text, re.M)}


def _config_path(argv: list[str]) -> str:
    return argv[argv.index("--config") + 1]


CONSOLE_TLS = "/etc/scgw/console/"  # where the gateway's container sees the console's files


def _compose_config(tmp_path: Path) -> Path:
    """compose/gateway.toml with the console's files under `tmp_path`/console (made empty
    when missing: broker-init writes them in the volume)."""
    console = tmp_path / "console"
    console.mkdir(exist_ok=True)
    for name in ("server.crt", "server.key"):
        (console / name).touch()
    text = (DEPLOY / "compose" / "gateway.toml").read_text()
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace(f'"{CONSOLE_TLS}', f'"{console}/'))
    return config


def test_the_services_and_their_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    for name in ("gateway", "broker-init"):
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).is_file()
    # the broker starts only on broker-init's files, the gateway only once all is there
    assert services["mosquitto"]["depends_on"]["broker-init"]["condition"] == (
        "service_completed_successfully")
    assert set(services["gateway"]["depends_on"]) == {"broker-init", "mosquitto", "influxdb"}
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./compose/grafana/provisioning"


def test_grafana_reads_the_store_the_gateway_writes(compose: dict[str, Any]) -> None:
    """The compose dashboard is the one definition, rendered for InfluxDB 2 in compose."""
    from gateway.ops.grafana.datasource import InfluxSource
    from gateway.ops.grafana.files import provisioning_files

    gateway = tomllib.loads((COMPOSE_FILE.parent / "compose" / "gateway.toml").read_text())
    store = gateway["store"]
    grafana = _service(compose, "grafana")
    # the token Grafana is given is the one the gateway writes with
    assert grafana["environment"][store["token_env"]] == (
        _service(compose, "gateway")["environment"][store["token_env"]])
    expected = provisioning_files(
        InfluxSource(url=store["url"], database=store["bucket"], token=True),
        password_env=store["token_env"])
    rendered = COMPOSE_FILE.parent / "compose" / "grafana" / "provisioning"
    committed = {str(p.relative_to(rendered)): p.read_text(encoding="utf-8")
                 for p in rendered.rglob("*") if p.is_file()}
    assert committed == expected, (
        "run: scgw grafana export deploy/compose/grafana/provisioning --datasource-url "
        f"{store['url']} --datasource-token --password-env {store['token_env']}")


def test_the_broker_listens_where_the_installed_one_does(
        compose: dict[str, Any], installation: Installation) -> None:
    listeners = _installed_listeners(installation)
    assert listeners == {1883: "127.0.0.1", 8883: ""}
    published = _published(_service(compose, "mosquitto"))
    # plain MQTT on this machine only, TLS on the LAN, on the same port numbers
    assert published == {port: (bind, port) for port, bind in listeners.items()}
    assert _published(_service(compose, "influxdb")) == {8086: ("127.0.0.1", 8086)}


def test_the_gateway_runs_like_the_service_does(compose: dict[str, Any],
                                                installation: Installation) -> None:
    gateway = _service(compose, "gateway")
    unit = installation.path("/etc/systemd/system/scgw.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start is not None
    config_path = _config_path(exec_start[1].split())
    assert _config_path(gateway["command"]) == config_path
    mounts = _mounts(gateway)
    assert mounts[config_path] == "./compose/gateway.toml"
    assert (DEPLOY / "compose" / "gateway.toml").is_file()
    pi = tomllib.loads(installation.first["etc/scgw/gateway.toml"].decode())
    journal_dir = str(Path(pi["journal"]["path"]).parent)
    assert journal_dir == "/var/lib/scgw"
    assert mounts[journal_dir] == "scgw-data"
    assert "scgw-data" in compose["volumes"]
    # broker-init and the broker share the broker's files
    assert _mounts(_service(compose, "broker-init"))["/broker"] == "broker"
    assert _mounts(_service(compose, "mosquitto"))[BROKER_PATH] == "broker"


def test_the_compose_configuration_is_valid_with_the_environment_compose_passes(
        compose: dict[str, Any], installation: Installation, tmp_path: Path) -> None:
    gateway = _service(compose, "gateway")
    declared = {name: "x" * 48 for name in gateway["environment"]}
    config = load_config(_compose_config(tmp_path), env=declared)
    pi = load_config(installation.seen_config(tmp_path), env=installation.secrets())
    assert config.site == pi.site
    assert config.broker.host == "mosquitto"
    assert config.broker.port in _published(_service(compose, "mosquitto"))
    for key in ("port", "username", "password_env", "tls"):
        assert getattr(config.broker, key) == getattr(pi.broker, key), key
    assert config.pseudonym_key_env == pi.pseudonym_key_env
    assert config.journal.path == pi.journal.path
    assert config.metrics is not None
    assert pi.metrics is not None
    assert config.metrics.port == pi.metrics.port
    # the duty office's console: on the compose network, published on the LAN, on the
    # installed service's port
    assert config.console is not None
    assert pi.console is not None
    assert (config.console.host, config.console.port) == ("0.0.0.0", pi.console.port)
    assert _published(gateway) == {config.console.port: ("", pi.console.port)}
    # over TLS, with the files broker-init issues into the volume the gateway mounts
    assert config.console.tls is not None
    assert pi.console.tls is not None
    assert str(config.console.tls.cert_file).endswith("/console/server.crt")
    assert _mounts(gateway)[CONSOLE_TLS.rstrip("/")] == "console-tls"
    assert _mounts(_service(compose, "broker-init"))[CONSOLE_TLS.rstrip("/")] == "console-tls"
    # InfluxDB 2 here, written with the token it was set up with, into its org and bucket
    influx = _service(compose, "influxdb")["environment"]
    assert config.store.api == "v2"
    assert config.store.url == "http://influxdb:8086"
    assert config.store.token_env is not None
    assert gateway["environment"][config.store.token_env] == (
        influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"])
    assert (config.store.org, config.store.bucket) == (
        influx["DOCKER_INFLUXDB_INIT_ORG"], influx["DOCKER_INFLUXDB_INIT_BUCKET"])


def test_no_secret_has_a_default_and_make_env_makes_every_one(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text()
    references = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?])?", text)
    secrets = {name for name, _ in references if re.search(r"PASSWORD|TOKEN|KEY", name)}
    assert secrets
    for name, form in references:
        if name in secrets:
            assert form == ":?", f"${{{name}}} must be required (:?), not defaulted"
    env = tmp_path / ".env"
    make_env = DEPLOY / "compose" / "make-env.sh"
    subprocess.run(["sh", str(make_env), str(env)], check=True, capture_output=True)
    made = env_file(env)
    assert secrets <= set(made)
    values = [made[name] for name in secrets]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[0-9a-f]{48}", v) for v in values)
    assert env.stat().st_mode & 0o077 == 0
    subprocess.run(["sh", str(make_env), str(env)], check=True, capture_output=True)
    assert env_file(env) == made, "a second run keeps every value"


def _broker_init(tmp_path: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **secrets,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SCGW_CONFIG": str(_compose_config(tmp_path)),
           "SCGW_CONSOLE_TLS_DIR": str(tmp_path / "console"),
           "SCGW_BROKER_DIR": str(tmp_path / "broker"), "SCGW_PKI_DIR": str(tmp_path / "pki"),
           "SCGW_BROKER_NAMES": "gateway-host.example"}
    result = subprocess.run(["bash", str(DEPLOY / "compose" / "broker-init.sh")], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_broker_init_gives_the_compose_broker_the_installers_setup(
        tmp_path: Path, installation: Installation) -> None:
    subprocess.run(["sh", str(DEPLOY / "compose" / "make-env.sh"), str(tmp_path / ".env")],
                   check=True, capture_output=True)
    secrets = env_file(tmp_path / ".env")
    _broker_init(tmp_path, secrets)
    broker_dir = tmp_path / "broker"
    rendered = (broker_dir / "scgw.conf").read_text()
    # the installer's file, but for a broker in a container: its own paths, and the plain
    # listener open to the compose network (the host publishes it on 127.0.0.1 only)
    assert retarget(rendered, [(BROKER_PATH, "/etc/mosquitto/scgw"),
                               ("listener 1883\n", "listener 1883 127.0.0.1\n")]) == (
        installation.path("/etc/mosquitto/conf.d/scgw.conf").read_text())
    users = {line.split(":")[0] for line in (broker_dir / "passwd").read_text().split()}
    assert users == {"gateway", "duty-console"}
    acl = (broker_dir / "acl").read_text()
    assert "user duty-console\ntopic read sc/c1/#\ntopic write sc/c1/alerts/+/+/ack\n" in acl
    for name in ("passwd", "acl", "server.key"):
        info = (broker_dir / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1883, 1883, 0o600), name

    # the broker as compose runs it: compose/mosquitto.conf including broker-init's files
    server = FileBroker(tmp_path / "mosquitto")
    server.workdir.mkdir()
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "scgw.conf").write_text(retarget(rendered, [
        (BROKER_PATH, str(broker_dir)),
        ("listener 1883\n", f"listener {server.port} 127.0.0.1\n"),
        ("listener 8883\n", f"listener {server.tls_port} 127.0.0.1\n")]))
    server.main = retarget((DEPLOY / "compose" / "mosquitto.conf").read_text(), [
        ("/mosquitto/data/", f"{server.workdir}/"), (BROKER_PATH, str(conf_d))])
    server.start()
    clients: list[Client] = []
    try:
        anonymous = Client(server.port)
        clients.append(anonymous)
        assert anonymous.connect().value == NOT_AUTHORIZED
        gateway = Client(server.port, "gateway", secrets["SCGW_MQTT_PASSWORD"])
        clients.append(gateway)
        assert not gateway.connect().is_failure
        credentials = dict(line.split("\t")[:2] for line in
                           (tmp_path / "pki" / "broker-credentials").read_text().splitlines()
                           if not line.startswith("#"))
        console = Client(server.tls_port, "duty-console", credentials["duty-console"],
                         ca_file=broker_dir / "ca.crt")
        clients.append(console)
        assert not console.connect().is_failure
    finally:
        for client in clients:
            client.close()
        server.stop()

    # the console's certificate, from the same CA, for the Docker host's names; its key
    # is the gateway's (the image's scgw user) alone
    console_dir = tmp_path / "console"
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(broker_dir / "ca.crt"),
                               str(console_dir / "server.crt")],
                              capture_output=True, text=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                          str(console_dir / "server.crt")],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert "DNS:gateway-host.example" in san
    key = (console_dir / "server.key").stat()
    assert (key.st_uid, key.st_gid, key.st_mode & 0o777) == (10001, 10001, 0o600)

    # again, as every `docker compose up` does: CA, certificate and passwords stay
    before = {name: (broker_dir / name).read_bytes() for name in ("ca.crt", "server.crt")}
    console_before = (console_dir / "server.crt").read_bytes()
    credentials_before = (tmp_path / "pki" / "broker-credentials").read_text()
    _broker_init(tmp_path, secrets)
    assert {name: (broker_dir / name).read_bytes() for name in before} == before
    assert (tmp_path / "pki" / "broker-credentials").read_text() == credentials_before
    assert (console_dir / "server.crt").read_bytes() == console_before
