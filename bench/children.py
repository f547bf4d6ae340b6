"""Helper processes of a benchmark (load generators, listeners, peers), always ended on exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import IO, Any

from bench.hostctl import REPO, BenchError, _wait_or_signal


class Child:
    """`async with Child(name, argv, log_dir) as c:` runs a process that talks JSON lines.

    Leaving the block closes its stdin, then sends SIGTERM and SIGKILL to its process group
    if it does not end by itself, so nothing it started outlives the benchmark.
    """

    def __init__(self, name: str, argv: list[str], log_dir: Path, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 stop_within_s: float = 15.0, json_lines: bool = True) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._env = env
        self._cwd = cwd or REPO
        self._stop_within_s = stop_within_s
        # a program that does not talk to us logs to stdout: into the log file with it, as
        # an unread pipe fills up and then blocks its writes (Node.js writes pipes in sync)
        self._json_lines = json_lines
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def __aenter__(self) -> Child:
        await asyncio.to_thread(self.log_path.parent.mkdir, parents=True, exist_ok=True)
        self._log = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE if self._json_lines else self._log,
                stderr=self._log, cwd=self._cwd, start_new_session=True,
                env={**os.environ, **self._env} if self._env else None)
        except OSError as exc:
            self._log.close()
            raise BenchError(f"cannot start {self.name}: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.end()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def send(self, line: str) -> None:
        proc = self._running()
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()

    async def read_json(self, within_s: float) -> dict[str, Any]:
        """The next JSON line it prints (other lines are skipped)."""
        proc = self._running()
        assert proc.stdout is not None
        async with asyncio.timeout(within_s):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    await proc.wait()
                    raise BenchError(f"{self.name} exited ({proc.returncode}); see "
                                     f"{self.log_path}")
                try:
                    body = json.loads(line)
                except ValueError:
                    continue
                if isinstance(body, dict):
                    return body

    async def close_input(self) -> None:
        proc = self._running()
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    async def wait(self, within_s: float) -> int:
        proc = self._proc
        if proc is None:
            raise BenchError(f"{self.name} is not running")
        try:
            return await asyncio.wait_for(proc.wait(), within_s)
        except TimeoutError:
            raise BenchError(f"{self.name} did not finish in {within_s} s; see "
                             f"{self.log_path}") from None

    def _running(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            raise BenchError(f"{self.name} is not running; see {self.log_path}")
        return self._proc

    async def end(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                if proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.close()
                await _wait_or_signal(proc, self._stop_within_s, signal.SIGTERM)
                if proc.returncode is None:
                    # whatever it started goes with it
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(TimeoutError):  # never hang the benchmark
                        await asyncio.wait_for(proc.wait(), 10)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def python_module(module: str, *args: str) -> list[str]:
    """argv running one of the benchmark's modules with the benchmark's Python."""
    return [sys.executable, "-m", module, *args]
