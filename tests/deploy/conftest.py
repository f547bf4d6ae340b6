"""One run of deploy/install.sh into a throwaway root, then a second one, for the session.

The root gets copies of this machine's user and group files (useradd needs them) and an
empty /etc/grafana (as if Grafana were installed), nothing else; the installer runs with
--no-apt --no-start, as it would to stage a system.
Between the runs an administrator's changes are made: two MQTT devices added to the
configuration, and a file left in the state directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "deploy" / "install.sh"
KEPT = ("etc/scgw", "etc/mosquitto", "etc/systemd/system", "etc/grafana", "usr/local/bin")
DEVICES = """
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
mqtt = { topic = "devices/sos-1", event_key = "action", events = { single = "press" } }

[[devices]]
id = "smoke-2"
kind = "smoke"
transport = "mqtt"
mqtt = { topic = "zigbee/smoke-2", readings = ["smoke_ppm"] }
"""
MARKER = "var/lib/scgw/left-by-the-admin"


@dataclass(frozen=True)
class Installation:
    root: Path
    first: dict[str, bytes]  # path below the root -> content, after the first run
    second: dict[str, bytes]  # ... after the second run
    second_output: str

    def path(self, name: str) -> Path:
        return self.root / name.lstrip("/")

    def secrets(self) -> dict[str, str]:
        return env_file(self.path("/etc/scgw/secrets.env"))

    def credentials(self) -> dict[str, str]:
        """Broker user -> plain password (the console's and the devices')."""
        lines = self.path("/etc/scgw/broker-credentials").read_text().splitlines()
        return {f[0]: f[1] for f in (line.split("\t") for line in lines)
                if not f[0].startswith("#")}

    def seen_config(self, directory: Path) -> Path:
        """The installed configuration as the target system reads it: the files it names
        under /etc/scgw (the console's certificate) inside the root. Written in `directory`."""
        text = self.path("/etc/scgw/gateway.toml").read_text()
        seen = directory / "gateway.toml"
        seen.write_text(text.replace('"/etc/scgw/', f'"{self.root}/etc/scgw/'))
        return seen

    def password(self, user: str) -> str:
        if user == "gateway":
            return self.secrets()["SCGW_MQTT_PASSWORD"]
        return self.credentials()[user]


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def install(root: Path, *options: str) -> str:
    proc = subprocess.run(["bash", str(INSTALLER), "--root", str(root), "--no-apt",
                           "--no-start", *options],
                          capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"install.sh failed ({proc.returncode}):\n{output}"
    return output


def snapshot(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for top in KEPT:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(root))] = path.read_bytes()
    return files


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    root = tmp_path_factory.mktemp("root")
    (root / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    (root / "etc" / "grafana").mkdir()  # as if Grafana were installed
    install(root)
    first = snapshot(root)
    config = root / "etc/scgw/gateway.toml"
    config.write_text(config.read_text() + DEVICES)
    (root / MARKER).write_text("journal backup\n")
    second_output = install(root)
    return Installation(root, first, snapshot(root), second_output)


def scgw_env(installation: Installation) -> dict[str, str]:
    """This process's environment plus the service's secrets."""
    return {**os.environ, **installation.secrets()}
