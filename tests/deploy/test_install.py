"""deploy/install.sh, run into a throwaway root: the files it leaves, the unit, a re-run."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import INSTALLER, MARKER, REPO, Installation, scgw_env

UNIT = "/etc/systemd/system/scgw.service"


def _owner(installation: Installation, path: str) -> tuple[str, str, int]:
    """(user, group, permission bits) of a file of the root, names from the root's files."""
    info = installation.path(path).stat()
    users = {int(f[2]): f[0] for f in (line.split(":") for line in
                                        installation.path("/etc/passwd").read_text().splitlines())}
    groups = {int(f[2]): f[0] for f in (line.split(":") for line in
                                         installation.path("/etc/group").read_text().splitlines())}
    return users[info.st_uid], groups[info.st_gid], stat.S_IMODE(info.st_mode)


@pytest.fixture(scope="module")
def verify_root(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed root plus what systemd-analyze needs of a system to judge the unit:
    systemd's own units and the /bin/kill of ExecReload."""
    systemd = installation.path("/usr/lib/systemd/system")
    if not systemd.exists():
        shutil.copytree("/usr/lib/systemd/system", systemd, symlinks=True)
    kill = installation.path("/bin/kill")
    kill.parent.mkdir(exist_ok=True)
    shutil.copy2(shutil.which("kill") or "/usr/bin/kill", kill)
    return installation.root


def _verify(root: Path, unit: str = UNIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit],
                          capture_output=True, text=True, timeout=60, check=False)


def test_systemd_analyze_verify_accepts_the_unit(installation: Installation,
                                                 verify_root: Path) -> None:
    result = _verify(verify_root)
    assert result.returncode == 0, result.stderr
    assert "scgw" not in result.stderr, result.stderr
    # the same check on a copy with a misspelt key, to be sure it would notice
    broken = installation.path("/etc/systemd/system/scgw-broken.service")
    broken.write_text(installation.path(UNIT).read_text().replace(
        "WatchdogSec=", "WatchDogSec="))
    try:
        assert "Unknown key 'WatchDogSec'" in _verify(
            verify_root, "/etc/systemd/system/scgw-broken.service").stderr
    finally:
        broken.unlink()


def test_unit_runs_the_installed_gateway_under_systemd_supervision(
        installation: Installation) -> None:
    text = installation.path(UNIT).read_text()
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    exec_start = settings["ExecStart"][0].split()
    assert installation.path(exec_start[0]).is_file()
    assert exec_start[1:] == ["run", "--config", "/etc/scgw/gateway.toml"]
    assert installation.path(exec_start[3]).is_file()
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["Restart"] == ["on-failure"]
    assert settings["EnvironmentFile"] == ["/etc/scgw/secrets.env"]
    assert settings["User"] == ["scgw"]
    # no gpio group on this machine: a unit naming it would not start
    assert settings["SupplementaryGroups"] == ["dialout"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["WorkingDirectory"] == ["/var/lib/scgw"]
    assert settings["StateDirectory"] == ["scgw"]  # /var/lib/scgw


def test_systemd_security_exposure_stays_low(verify_root: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                             f"--root={verify_root}", UNIT],
                            capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for scgw.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


def test_the_default_configuration_passes_check_config(installation: Installation,
                                                      tmp_path: Path) -> None:
    first = tomllib.loads(installation.first["etc/scgw/gateway.toml"].decode())
    assert first["site"] == "c1"
    assert first["store"] == {"api": "v1", "url": "http://127.0.0.1:8086", "database": "scgw"}
    assert first["broker"]["port"] == 1883
    assert first["broker"]["password_env"] in installation.secrets()
    assert first["pseudonym_key_env"] in installation.secrets()
    scgw = installation.path("/opt/scgw/venv/bin/scgw")
    seen = installation.seen_config(tmp_path)
    result = subprocess.run([str(scgw), "check-config", str(seen)], env=scgw_env(installation),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK, site c1, 2 device(s)" in " ".join(result.stdout.split())  # rich wraps


def test_secrets_are_random_unique_and_readable_only_by_whom_needs_them(
        installation: Installation) -> None:
    secrets = installation.secrets()
    passwords = [secrets["SCGW_MQTT_PASSWORD"], *installation.credentials().values()]
    assert len(passwords) == 4  # gateway, duty console, two devices
    assert len(set(passwords)) == len(passwords)
    assert all(re.fullmatch(r"[0-9a-f]{48}", p) for p in passwords)
    passwd = installation.path("/etc/mosquitto/scgw/passwd").read_text()
    assert all(p not in passwd for p in passwords)
    assert {line.split(":")[0] for line in passwd.split()} == {
        "gateway", "duty-console", "sos-1", "smoke-2"}
    assert all(line.split(":", 1)[1].startswith("$7$") for line in passwd.split())
    expected = {
        "/etc/scgw": ("root", "scgw", 0o750),
        "/etc/scgw/secrets.env": ("root", "scgw", 0o640),
        "/etc/scgw/gateway.toml": ("root", "scgw", 0o640),
        "/etc/scgw/broker-credentials": ("root", "root", 0o600),
        "/etc/scgw/pki": ("root", "root", 0o700),
        "/etc/scgw/pki/ca.key": ("root", "root", 0o600),
        "/etc/scgw/ca.crt": ("root", "root", 0o644),
        "/etc/mosquitto/scgw": ("root", "mosquitto", 0o750),
        "/etc/mosquitto/scgw/passwd": ("mosquitto", "mosquitto", 0o600),
        "/etc/mosquitto/scgw/acl": ("mosquitto", "mosquitto", 0o600),
        "/etc/mosquitto/scgw/server.key": ("mosquitto", "mosquitto", 0o600),
        "/var/lib/scgw": ("scgw", "scgw", 0o750),
        "/opt/scgw/venv/bin/scgw": ("root", "root", 0o755),
    }
    assert {path: _owner(installation, path) for path in expected} == expected
    members = next(line for line in installation.path("/etc/group").read_text().split()
                   if line.startswith("dialout:")).split(":")[3].split(",")
    assert "scgw" in members


def test_a_second_run_keeps_config_secrets_certificates_and_data(
        installation: Installation) -> None:
    first, second = installation.first, installation.second
    edited = installation.path("/etc/scgw/gateway.toml").read_text()
    assert second["etc/scgw/gateway.toml"].decode() == edited, "the admin's edit stays"
    assert "sos-1" in edited
    assert installation.path(MARKER).read_text() == "journal backup\n"
    for path in ("etc/scgw/secrets.env", "etc/scgw/pki/ca.key", "etc/scgw/pki/ca.crt",
                 "etc/scgw/ca.crt", "etc/mosquitto/scgw/server.key",
                 "etc/mosquitto/scgw/server.crt", "etc/mosquitto/conf.d/scgw.conf", UNIT[1:]):
        assert second[path] == first[path], f"{path} changed"
    # users already there keep their hashes; the new devices are added
    kept = first["etc/mosquitto/scgw/passwd"].decode().splitlines()
    now = second["etc/mosquitto/scgw/passwd"].decode().splitlines()
    assert now[:len(kept)] == kept
    assert [line.split(":")[0] for line in now[len(kept):]] == ["sos-1", "smoke-2"]
    assert "new broker users: sos-1 smoke-2" in installation.second_output
    assert first["etc/scgw/broker-credentials"] in second["etc/scgw/broker-credentials"]
    acl = second["etc/mosquitto/scgw/acl"].decode()
    assert "user sos-1\ntopic write devices/sos-1\n" in acl
    assert "user smoke-2\ntopic write zigbee/smoke-2\n" in acl


async def test_the_console_gets_a_certificate_from_the_installers_ca(
        installation: Installation) -> None:
    console = tomllib.loads(installation.first["etc/scgw/gateway.toml"].decode())["console"]
    assert console["tls"] == {"cert_file": "/etc/scgw/console/server.crt",
                              "key_file": "/etc/scgw/console/server.key"}
    cert, key = (installation.path(console["tls"][k]) for k in ("cert_file", "key_file"))
    ca = installation.path("/etc/scgw/ca.crt")
    verified = await asyncio.to_thread(
        subprocess.run, ["openssl", "verify", "-CAfile", str(ca), str(cert)],
        capture_output=True, text=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the service's user reads the key, nobody else
    assert _owner(installation, "/etc/scgw/console") == ("root", "scgw", 0o750)
    assert _owner(installation, "/etc/scgw/console/server.key") == ("root", "scgw", 0o640)
    # a browser that trusts the compound's CA accepts the console by the names it uses
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    browser = ssl.create_default_context(cafile=str(ca))
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        for name in ("localhost", f"{socket.gethostname()}.local"):
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=browser,
                                                      server_hostname=name)
            writer.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=browser,
                                          server_hostname="elsewhere.example")
    finally:
        listener.close()
    # a second run keeps the certificate and says where the console is
    for path in ("etc/scgw/console/server.crt", "etc/scgw/console/server.key"):
        assert installation.second[path] == installation.first[path], f"{path} changed"
    assert f"duty console:   https://{socket.gethostname()}.local:8088/" in (
        installation.second_output)


def test_help_and_refusals() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(INSTALLER), *args], capture_output=True, text=True,
                              timeout=30, check=False)

    shown = run("--help")
    assert shown.returncode == 0
    assert "--no-start" in shown.stdout
    refused = run("--root", "/tmp", "--no-apt")
    assert refused.returncode == 1
    assert "--root needs --no-apt and --no-start" in refused.stderr
    assert "unknown option --frobnicate" in run("--frobnicate").stderr
    assert "not a port: 70000" in run("--mqtt-port", "70000").stderr


def test_influxdb_answers_on_the_loopback_interface_only(installation: Installation) -> None:
    dropin = installation.path("/etc/systemd/system/influxdb.service.d/scgw-loopback.conf")
    lines = dropin.read_text().splitlines()
    assert lines[lines.index("[Service]") + 1:] == [
        "Environment=INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:8086"]
    config = tomllib.loads(installation.path("/etc/scgw/gateway.toml").read_text())
    assert config["store"]["url"] == "http://127.0.0.1:8086"


def test_grafana_gets_the_gateways_provisioning(installation: Installation) -> None:
    source = REPO / "deploy" / "grafana" / "provisioning"
    shipped = {str(f.relative_to(source)): f.read_bytes()
               for f in sorted(source.rglob("*")) if f.is_file()}
    assert shipped
    installed = installation.path("/etc/grafana/provisioning")
    assert {name: (installed / name).read_bytes() for name in shipped} == shipped


def test_the_scgw_command_brings_the_services_secrets_and_config(
        installation: Installation, tmp_path: Path) -> None:
    """/usr/local/bin/scgw, with the gateway replaced by a script showing what it gets."""
    show = tmp_path / "show"
    show.write_text('#!/bin/sh\necho "$* | $SCGW_MQTT_PASSWORD"\n')
    show.chmod(0o755)
    wrapper = tmp_path / "scgw"
    wrapper.write_text(installation.path("/usr/local/bin/scgw").read_text()
                       .replace("/opt/scgw/venv/bin/scgw", str(show))
                       .replace("/etc/scgw/secrets.env",
                                str(installation.path("/etc/scgw/secrets.env"))))

    def scgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(wrapper), *args], capture_output=True, text=True,
                              timeout=30, check=False)

    password = installation.secrets()["SCGW_MQTT_PASSWORD"]
    config = "--config /etc/scgw/gateway.toml"
    assert scgw("status").stdout == f"status {config} | {password}\n"
    assert scgw("alerts", "ack", "elder.sos", "sos-1", "--by", "duty").stdout == (
        f"alerts ack elder.sos sos-1 --by duty {config} | {password}\n")
    assert scgw("status", "-c", "other.toml").stdout == f"status -c other.toml | {password}\n"
    assert scgw("check-config", "x.toml").stdout == f"check-config x.toml | {password}\n"
    refused = scgw("run")
    assert refused.returncode == 2
    assert "systemctl start scgw" in refused.stderr


def _installed_packages() -> set[str]:
    """The Debian packages install.sh asks apt-get for, its own function run with apt-get
    (and the output helpers) replaced by ones that only record."""
    script = (f'source <(sed -n "/^install_packages()/,/^}}/p" {INSTALLER}); '
              "APT=1; WITH_GRAFANA=0; is_raspberry_pi() { false; }; step() { :; }; "
              'say() { :; }; apt-get() { echo "$*" >&3; }; install_packages 3>&1 >/dev/null')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    (install,) = [line.split() for line in result.stdout.splitlines()
                  if line.startswith("install ")]
    return {word for word in install[1:] if not word.startswith("-")}


def test_the_tools_the_deploy_guide_uses_are_installed() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|console)\n(.*?)```", guide, re.S)
    commands = {line.split()[0] for block in blocks for line in block.splitlines()
                if line.strip() and not line.startswith((" ", "#", "$"))}
    # Debian's package for each broker client the guide runs
    needed = {"mosquitto_sub": "mosquitto-clients", "mosquitto_pub": "mosquitto-clients",
              "mosquitto_passwd": "mosquitto"}
    packages = _installed_packages()
    assert {"python3", "python3-venv", "mosquitto", "influxdb", "openssl"} <= packages
    for command in commands & needed.keys():
        assert needed[command] in packages, f"{command} is in docs/deploy.md"
    assert "mosquitto_sub" in commands
