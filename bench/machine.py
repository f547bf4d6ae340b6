"""What the figures were measured on: CPUs, memory, Python, kernel, disk, server versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.ops.private_servers import ServiceError, find_binary


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_mib: int
    python: str
    kernel: str
    workdir: str
    workdir_fs: str
    mosquitto: str
    victoria_metrics: str
    revision: str

    def items(self) -> list[tuple[str, str]]:
        return [
            ("nproc", str(self.cpus)),
            ("CPU", self.cpu_model),
            ("memory", f"{self.memory_mib} MiB"),
            ("Python", self.python),
            ("kernel", self.kernel),
            ("work dir", f"{self.workdir} ({self.workdir_fs})"),
            ("mosquitto", self.mosquitto),
            ("victoria-metrics", self.victoria_metrics),
            ("gateway revision", self.revision),
        ]


def describe(workdir: Path) -> Machine:
    """Blocking (reads /proc, runs the servers' version commands): call before the loop runs."""
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        memory_mib=_memory_mib(),
        python=f"{platform.python_implementation()} {platform.python_version()} "
               f"({sys.executable})",
        kernel=f"{platform.system()} {platform.release()} {platform.machine()}",
        workdir=str(workdir),
        workdir_fs=_filesystem(workdir),
        mosquitto=_version(["mosquitto", "-h"], r"mosquitto version (\S+)"),
        victoria_metrics=_version(["victoria-metrics", "-version"], r"(v\d[\w.\-+]*)"),
        revision=_revision(),
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_mib() -> int:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    return int(match.group(1)) // 1024 if match else 0


def _filesystem(path: Path) -> str:
    """The type and device of the mount holding `path`: an fsync on tmpfs costs nothing."""
    target = str(path.resolve())
    best = ("", "unknown", "?")
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mount, fstype = parts[0], parts[1].replace("\\040", " "), parts[2]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, fstype, device)
    return f"{best[1]} on {best[2]}"


def _version(command: list[str], pattern: str) -> str:
    try:
        binary = find_binary(command[0])
        done = subprocess.run([binary, *command[1:]], capture_output=True, timeout=10,
                              check=False)
    except (ServiceError, OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).decode(errors="replace")
    match = re.search(pattern, text)
    if match:
        return match.group(1)
    package = _deb_version(Path(binary).name)
    return package or "unknown version"


def _revision() -> str:
    """The git commit measured, with `+changes` when the working tree differs from it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, timeout=10,
                               check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head.stdout.decode().strip() + (" +changes" if dirty.stdout.strip() else "")


def _deb_version(package: str) -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"{done.stdout.decode().strip()} (Debian package)" if done.returncode == 0 else ""
