"""Private Mosquitto and VictoriaMetrics processes on free loopback ports.

Used by `scgw demo` and by the test suite: each starts its server under a directory of
its own, waits until it answers, and can kill, restart and stop it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO


class ServiceError(Exception):
    """A local service could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise ServiceError(f"{name} is not installed: run `make deps` (it uses apt-get)")
    return found


class _Process:
    name = "service"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = (self.workdir / f"{self.name}.log").open("ab")
        self._proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self._proc.returncode}; see "
                    f"{self.workdir / (self.name + '.log')}"
                )
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not answer on port {self.port} in {timeout} s")

    def kill(self) -> None:
        """SIGKILL: the way a crash or power cut ends a server."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._close_log()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()

    def restart(self) -> None:
        """Start again on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Mosquitto(_Process):
    """A broker on 127.0.0.1 with anonymous access, for demos and tests."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, *, persistence: bool = False,
                 tls: tuple[Path, Path, Path] | None = None,
                 passwords: dict[str, str] | None = None) -> None:
        """`tls` is (CA, certificate, key); `passwords` turns anonymous access off."""
        super().__init__(workdir, port)
        self.persistence = persistence
        self.tls = tls
        self.passwords = passwords

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.passwords else 'true'}",
            "max_queued_messages 100000",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",  # with persistence: sessions on disk within a second
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write here
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if self.passwords:
            password_file = self.workdir / "passwords"
            password_file.write_text("".join(f"{u}:{p}\n" for u, p in self.passwords.items()))
            password_file.chmod(0o600)
            # hash the plain-text entries in place
            subprocess.run([find_binary("mosquitto_passwd"), "-U", str(password_file)],
                           check=True, capture_output=True)
            lines.append(f"password_file {password_file}")
        conf.write_text("\n".join(lines) + "\n")
        return [find_binary("mosquitto"), "-c", str(conf)]

    def ready(self) -> bool:
        if self.tls is not None:  # a plain TCP connect would fill its log with TLS errors
            return "running" in (self.workdir / f"{self.name}.log").read_text(errors="replace")
        with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", self.port), timeout=0.2
        ):
            return True
        return False


class VictoriaMetrics(_Process):
    """A single-node VictoriaMetrics accepting the InfluxDB v2 write API.

    Deduplication at 1 ms makes a replayed point overwrite itself, as it does in InfluxDB.
    """

    name = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            find_binary("victoria-metrics"),
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=WARN",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
