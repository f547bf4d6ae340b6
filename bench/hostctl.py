"""The benchmark's side of bench.host: start the gateway process, ask it things, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A benchmark could not be carried out."""


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the gateway process, taken inside it."""

    mono: float
    cpu_s: float
    ctx_switches: int
    rss_kib: int
    hwm_kib: int
    threads: int
    counters: dict[str, int]
    journal_commits: int
    journal_records: int
    last_seq: int
    mqtt_cursor: int
    store_cursor: int
    telemetry_pending: dict[str, int]
    telemetry_buffered: int
    suppressed: int
    connected: bool

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Stats:
        return cls(
            mono=float(body["mono"]), cpu_s=float(body["cpu_s"]),
            ctx_switches=int(body["ctx_switches"]), rss_kib=int(body["rss_kib"]),
            hwm_kib=int(body["hwm_kib"]), threads=int(body["threads"]),
            counters={str(k): int(v) for k, v in body["counters"].items()},
            journal_commits=int(body["journal_commits"]),
            journal_records=int(body["journal_records"]), last_seq=int(body["last_seq"]),
            mqtt_cursor=int(body["mqtt_cursor"]), store_cursor=int(body["store_cursor"]),
            telemetry_pending={str(k): int(v) for k, v in body["telemetry_pending"].items()},
            telemetry_buffered=int(body["telemetry_buffered"]),
            suppressed=int(body["suppressed"]), connected=bool(body["connected"]),
        )

    @property
    def drained(self) -> bool:
        """Both sinks have delivered everything journalled and buffered."""
        return (self.mqtt_cursor >= self.last_seq and self.store_cursor >= self.last_seq
                and not any(self.telemetry_pending.values()))


@dataclass(frozen=True, slots=True)
class Release:
    mono: float  # time.monotonic() in the gateway process; the same clock as ours
    ms: int  # wall clock, epoch milliseconds


class GatewayProcess:
    """`async with GatewayProcess(...) as gw:` runs one gateway; leaving always ends it."""

    def __init__(self, name: str, config: dict[str, Any], workdir: Path) -> None:
        self.name = name
        self.config = config
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.final: Stats | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> GatewayProcess:
        try:
            await self._start()
        except BaseException:
            await self._end()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.stop()
        finally:
            await self._end()

    async def _start(self) -> None:
        config_path = self.workdir / f"{self.name}.json"
        await asyncio.to_thread(self.workdir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(config_path.write_text, json.dumps(self.config, indent=2))
        self._log = await asyncio.to_thread(self.log_path.open, "ab")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.host", str(config_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            cwd=REPO, start_new_session=True,  # Ctrl-C goes to us; we stop it in order
        )
        hello = await self._read(within_s=60)
        if hello.get("event") != "ready":
            raise BenchError(f"gateway process {self.name}: unexpected greeting {hello}")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError(f"gateway process {self.name} is not running")
        return self._proc.pid

    async def request(self, op: str, answer_within_s: float = 30.0, **args: Any) -> dict[str, Any]:
        async with self._lock:
            proc = self._running()
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await proc.stdin.drain()
            reply = await self._read(answer_within_s)
        if not reply.get("ok"):
            raise BenchError(f"gateway process {self.name}: {op} failed: {reply.get('error')}")
        return reply

    async def stats(self) -> Stats:
        return Stats.parse(await self.request("stats"))

    async def press(self, devices: list[str], hold_s: float) -> dict[str, Release]:
        reply = await self.request("press", answer_within_s=hold_s + 30, devices=devices,
                                   hold_s=hold_s)
        return {d: Release(float(r["mono"]), int(r["ms"])) for d, r in reply["released"].items()}

    async def store_accepted(self, device: str, since_ms: int, within_s: float = 10.0) -> float:
        """When the store accepted the firing point of `device` stamped >= since_ms."""
        reply = await self.request("store_accepted", answer_within_s=within_s + 5,
                                   device=device, since_ms=since_ms, wait_s=within_s)
        return float(reply["mono"])

    async def backlog(self, count: int, devices: list[str], kind: str, event: str
                      ) -> dict[str, Any]:
        """Append `count` events through the gateway's intake; answers once all are on disk."""
        return await self.request("backlog", answer_within_s=300, count=count,
                                  devices=devices, kind=kind, event=event)

    async def stop(self, within_s: float = 60.0) -> Stats:
        """Stop the gateway cleanly (it drains its journal); returns its last stats."""
        async with self._lock:
            proc = self._running()
            assert proc.stdin is not None
            proc.stdin.write(b'{"op": "stop"}\n')
            await proc.stdin.drain()
            reply = await self._read(within_s)
            await asyncio.wait_for(proc.wait(), within_s)
        if reply.get("event") != "stopped":
            raise BenchError(f"gateway process {self.name}: unexpected answer to stop: {reply}")
        self.final = Stats.parse(reply)
        return self.final

    def _running(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            raise BenchError(f"gateway process {self.name} is not running; see {self.log_path}")
        return self._proc

    async def _read(self, within_s: float) -> dict[str, Any]:
        proc = self._running()
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), within_s)
        except TimeoutError:
            raise BenchError(f"gateway process {self.name} did not answer in {within_s} s; "
                             f"see {self.log_path}") from None
        if not line:
            last_words = await asyncio.to_thread(self._last_words)
            raise BenchError(f"gateway process {self.name} exited: {last_words}; "
                             f"see {self.log_path}")
        body = json.loads(line)
        if not isinstance(body, dict):
            raise BenchError(f"gateway process {self.name}: bad answer {line!r}")
        return body

    def _last_words(self) -> str:
        """The last line the process logged (its exception, when it died of one)."""
        if self._log is not None:
            self._log.flush()
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "nothing logged"

    async def _end(self) -> None:
        """Make sure the process is gone: close its input, then SIGTERM, then SIGKILL."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                if proc.stdin is not None:
                    proc.stdin.close()  # end of input: it stops the gateway by itself
                await _wait_or_signal(proc, 15.0, signal.SIGTERM)
                await _wait_or_signal(proc, 5.0, signal.SIGKILL)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


async def _wait_or_signal(proc: asyncio.subprocess.Process, within_s: float,
                          then: signal.Signals) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), within_s)
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(then)
    if then is signal.SIGKILL:
        with contextlib.suppress(TimeoutError):  # never hang the benchmark
            await asyncio.wait_for(proc.wait(), 10)
