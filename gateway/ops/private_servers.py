"""Private Mosquitto, VictoriaMetrics and InfluxDB 1.x processes on free loopback ports.

Used by `scgw demo` and by the test suite: each starts its server under a directory of
its own, waits until it answers, and can kill, restart and stop it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gateway.core.config import BROKER_MESSAGE_LIMIT


class ServiceError(Exception):
    """A local service could not be started."""


def free_port() -> int:
    """A loopback port free now, for a server started next.

    Drawn at random below the kernel's ephemeral range: a port the kernel hands out
    (`bind` to port 0) is free only until closed, and the source port of any outgoing
    connection comes from that same range, so the server that bound it a moment later
    sometimes found it taken ("address already in use"). Below the range only other
    servers bind, and a random draw from thousands of ports rarely meets one of them.
    """
    low = _ephemeral_low()
    if low - PORTS_FROM >= 1000:
        for _ in range(100):
            port = _draw.randrange(PORTS_FROM, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORTS_FROM = 10_000  # the lowest port free_port draws
_draw = random.SystemRandom()  # not the processes' seeded generators: they may share one


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; elsewhere IANA's 49152)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49_152


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

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP for the block: a server that hangs with its connections open."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServiceError(f"{self.name} is not running")
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._proc.send_signal(signal.SIGCONT)

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

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServiceError(f"{self.name} was never started")
        return self._proc.pid

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Mosquitto(_Process):
    """A broker on 127.0.0.1 with anonymous access, for demos and tests."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, *, persistence: bool = False,
                 tls: tuple[Path, Path, Path] | None = None,
                 passwords: dict[str, str] | None = None,
                 message_size_limit: int | None = BROKER_MESSAGE_LIMIT,
                 autosave_s: int = 1, max_inflight: int = 1000) -> None:
        """`tls` is (CA, certificate, key); `passwords` turns anonymous access off;
        `message_size_limit` None lets any payload through, as Mosquitto's default does;
        with `persistence`, the database is saved every `autosave_s` seconds;
        `max_inflight` is its Receive Maximum (1000 as the installed broker's)."""
        super().__init__(workdir, port)
        self.max_inflight = max_inflight
        self.persistence = persistence
        self.autosave_s = autosave_s
        self.tls = tls
        self.passwords = passwords
        self.message_size_limit = message_size_limit

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.passwords else 'true'}",
            "max_queued_messages 100000",
            f"max_inflight_messages {self.max_inflight}",
            "set_tcp_nodelay true",  # as the installed broker's
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # with persistence: sessions on disk within a second by default
            f"autosave_interval {self.autosave_s}",
        ]
        if self.message_size_limit is not None:  # as the installed broker's
            lines.append(f"message_size_limit {self.message_size_limit}")
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


class InfluxDB1(_Process):
    """Debian's InfluxDB 1.x (`influxd`) with its own directories, HTTP on a free port.

    It serves the 1.x `/write` endpoint and InfluxQL on `/query`. With `admin` (user,
    password) authentication is on and that admin user is created at the first start.
    """

    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None, *,
                 admin: tuple[str, str] | None = None) -> None:
        super().__init__(workdir, port)
        self.rpc_port = free_port()
        self.admin = admin

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.workdir / "meta"}"\n'
            f'[data]\n  dir = "{self.workdir / "data"}"\n'
            f'  wal-dir = "{self.workdir / "wal"}"\n'
            '  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n"
            f"  auth-enabled = {'true' if self.admin else 'false'}\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return [find_binary("influxd"), "run", "-config", str(conf)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return bool(resp.status == 204)
        except OSError:
            return False

    def start(self, timeout: float = 15.0) -> None:
        super().start(timeout)
        if self.admin is None:
            return
        user, password = self.admin
        statement = f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        deadline = time.monotonic() + timeout
        while True:  # allowed without credentials while there is no user
            try:
                error = self.query(statement, anonymous=True)["results"][0].get("error")
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
            if not error:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name}: could not create user {user}: {error}")
            time.sleep(0.1)

    def query(self, influxql: str, database: str | None = None, *,
              anonymous: bool = False) -> dict[str, Any]:
        """Run InfluxQL (GET for SELECT/SHOW, POST otherwise); the decoded JSON answer."""
        params = {"q": influxql, "epoch": "ms"}
        if database is not None:
            params["db"] = database
        data = urllib.parse.urlencode(params).encode()
        verb = influxql.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "SHOW"):
            request = urllib.request.Request(f"{self.url}/query?{data.decode()}")
        else:
            request = urllib.request.Request(f"{self.url}/query", data=data, method="POST")
        if self.admin is not None and not anonymous:
            credentials = base64.b64encode(":".join(self.admin).encode()).decode()
            request.add_header("Authorization", f"Basic {credentials}")
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def create_database(self, database: str) -> None:
        answer = self.query(f'CREATE DATABASE "{database}"')
        error = answer.get("results", [{}])[0].get("error")
        if error:
            raise ServiceError(f"CREATE DATABASE {database}: {error}")


# -- a NATS JetStream cluster (the city) --------------------------------------------------


class NatsNode(_Process):
    """One node of a private NATS cluster with JetStream; its store under its work dir."""

    def __init__(self, workdir: Path, server_name: str, cluster: str,
                 routes: list[int], route_port: int,
                 users: dict[str, str] | None = None) -> None:
        """`users` (name: password) turns anonymous access off; one route (its own) is a
        server alone, without a cluster."""
        super().__init__(workdir)
        self.users = users
        self.name = server_name
        self.server_name = server_name
        self.cluster = cluster
        self.route_port = route_port
        self.routes = routes  # every node's route port, its own included
        self.monitor_port = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes
                           if p != self.route_port)
        text = (
            f'server_name: "{self.server_name}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'jetstream {{\n  store_dir: "{self.workdir / "js"}"\n'
            "  max_memory_store: 64MB\n  max_file_store: 2GB\n}\n"
        )
        if len(self.routes) > 1:
            text += (
                f'cluster {{\n  name: "{self.cluster}"\n'
                f"  listen: 127.0.0.1:{self.route_port}\n"
                # clients keep to the servers they were given (a test's relay in front of one)
                f"  no_advertise: true\n  routes: [{routes}]\n}}\n")
        if self.users:
            entries = ", ".join(f"{{user: {json.dumps(u)}, password: {json.dumps(p)}}}"
                                for u, p in self.users.items())
            text += f"authorization {{\n  users: [{entries}]\n}}\n"
        conf.write_text(text)
        return [find_binary("nats-server"), "-c", str(conf)]

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", self.port), timeout=0.2
        ):
            return True
        return False

    def monitor(self, path: str) -> dict[str, Any]:
        """A monitoring endpoint's JSON (`/jsz`, `/varz`, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}",
                                    timeout=2) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def healthy(self) -> bool:
        """JetStream is up on this node and it knows the meta group's leader."""
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=0.5) as resp:
                if resp.status != 200:
                    return False
            if len(self.routes) == 1:
                return True  # alone: no meta group to wait for
            return bool(self.monitor("/jsz").get("meta_cluster", {}).get("leader"))
        except (OSError, ValueError):
            return False


# a node restarted while it holds many streams' replicas reports healthy only once each
# has caught up with its leader: 30 s was not always enough on a loaded 2-core machine
HEALTHY_WITHIN_S = 120.0


class NatsCluster:
    """Three (or `size`) NATS servers on loopback ports, clustered with JetStream (`size`
    1: one server alone).

    `start` runs them all (a JetStream cluster elects its meta leader only once a quorum is
    up), then waits until every node is healthy. A node can be killed and started again on
    the same ports with the same store, as a crashed machine that comes back.
    """

    def __init__(self, workdir: Path, size: int = 3, name: str = "city",
                 users: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        route_ports = [free_port() for _ in range(size)]
        self.nodes = [NatsNode(workdir / f"n{i + 1}", f"n{i + 1}", name, route_ports, port,
                               users)
                      for i, port in enumerate(route_ports)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> NatsNode:
        return next(n for n in self.nodes if n.server_name == server_name)

    def start(self, timeout: float = HEALTHY_WITHIN_S) -> None:
        for node in self.nodes:
            node.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = HEALTHY_WITHIN_S) -> None:
        """Until every running node has JetStream up and knows the meta leader (and its
        /healthz says every stream and consumer replica it holds is current)."""
        deadline = time.monotonic() + timeout
        while not all(n.healthy() for n in self.nodes if n.running):
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the NATS cluster did not become healthy in {timeout} s; "
                                   f"see the logs under {self.workdir}")
            time.sleep(0.1)

    def stream_leader(self, stream: str, account: str = "$G") -> str | None:
        """The server name of `stream`'s Raft leader, as the running nodes report it."""
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = node.monitor(f"/jsz?acc={urllib.parse.quote(account)}&streams=true")
                for acc in info.get("account_details", []):
                    for detail in acc.get("stream_detail", []):
                        leader = detail.get("cluster", {}).get("leader")
                        if detail.get("name") == stream and leader:
                            return str(leader)
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
