"""`make system-deps` installs the Debian package of each missing tool, and nothing else.

The Makefile runs with a PATH that holds only the tools a case leaves installed, and with
apt-get replaced by a recorder: no package is installed or removed on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"mosquitto": "mosquitto", "mosquitto_passwd": "mosquitto",
         "victoria-metrics": "victoria-metrics", "influxd": "influxdb", "openssl": "openssl",
         "systemd-analyze": "systemd", "useradd": "passwd", "chromium": "chromium",
         "chromedriver": "chromium-driver", "nats-server": "nats-server"}
FONT = "font"  # in `present`: the CJK font file is there
EVERYTHING = ["mosquitto", "victoria-metrics", "influxdb", "openssl", "systemd", "passwd",
              "chromium", "chromium-driver", "nats-server", "fonts-wqy-microhei",
              "python3-venv"]


def _system_deps(tmp_path: Path, present: set[str],
                 venv_module: bool = True) -> list[list[str]]:
    """The apt-get calls `make system-deps` makes when only `present` tools are installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    font = tmp_path / "font.ttc"
    if FONT in present:
        font.write_bytes(b"")
    for tool in present - {FONT}:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "apt-get.calls"
    recorder = tmp_path / "apt-get"
    recorder.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    recorder.chmod(0o755)
    python = tmp_path / "python3"
    # a Python without the venv module fails on `import ensurepip, venv` (python3-venv)
    python.write_text("#!/bin/sh\n"
                      + ('case "$2" in *ensurepip*) exit 1 ;; esac\n' if not venv_module else "")
                      + f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    make = shutil.which("make")
    assert make is not None
    result = subprocess.run(
        [make, "-s", "-C", str(REPO), "system-deps", f"PYTHON={python}", "TOOL_DIRS=",
         f"FILES={font}:fonts-wqy-microhei", f"APT_GET={recorder}"],
        env={**os.environ, "PATH": str(bin_dir)}, capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    if not calls.exists():
        return []
    return [line.split() for line in calls.read_text().splitlines()]


def test_nothing_is_installed_when_every_tool_is_there(tmp_path: Path) -> None:
    assert _system_deps(tmp_path, {*TOOLS, FONT}) == []


def test_only_the_packages_of_missing_tools_are_installed(tmp_path: Path) -> None:
    calls = _system_deps(tmp_path, {*TOOLS, FONT} - {"influxd", "useradd"})
    assert calls == [["update", "-qq"], ["install", "-y", "-qq", "--no-upgrade", "influxdb",
                                         "passwd"]]


@pytest.mark.parametrize("missing", ["mosquitto", "mosquitto_passwd"])
def test_one_package_for_tools_it_shares(tmp_path: Path, missing: str) -> None:
    calls = _system_deps(tmp_path, {*TOOLS, FONT} - {"mosquitto", "mosquitto_passwd"} | (
        {"mosquitto", "mosquitto_passwd"} - {missing}))
    assert calls[-1] == ["install", "-y", "-qq", "--no-upgrade", "mosquitto"]


def test_a_fresh_machine_gets_everything(tmp_path: Path) -> None:
    calls = _system_deps(tmp_path, set(), venv_module=False)
    assert calls == [["update", "-qq"], ["install", "-y", "-qq", "--no-upgrade", *EVERYTHING]]


def test_the_cjk_font_is_installed_when_missing(tmp_path: Path) -> None:
    calls = _system_deps(tmp_path, set(TOOLS))
    assert calls == [["update", "-qq"], ["install", "-y", "-qq", "--no-upgrade",
                                         "fonts-wqy-microhei"]]
