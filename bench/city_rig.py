"""The city's rig, shared by the benchmark and the tests: hub processes, a compound's
accepted alarms, and the oracle that reads the city stream and the central store."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.js import api
from nats.js.client import JetStreamContext

from gateway.core.model import DeliveryClass, DeviceEvent
from gateway.journal import Journal
from gateway.ops.store_query import export

REPO = Path(__file__).resolve().parent.parent


def toml(raw: dict[str, Any]) -> str:
    """`raw` (tables of scalars and lists) as TOML."""
    out = []
    for table, values in raw.items():
        out.append(f"[{table}]")
        out += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(out) + "\n"


class HubProcess:
    """`scgw hub run` as a process of its own, killable like a crashed machine."""

    def __init__(self, workdir: Path, raw: dict[str, Any], name: str) -> None:
        self.name = name
        self.port = int(raw["board"]["port"])
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / f"{name}.toml"
        self.config_file.write_text(toml(raw))
        self.log = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.ops.cli", "hub", "run", "--config",
                 str(self.config_file), "--name", self.name, "--log-level", "info"],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

    def status(self) -> dict[str, int] | None:
        """The process's counters (blocking: from a thread); None while it is not up."""
        state = self.state()
        return state["counters"] if state is not None else None

    def state(self) -> dict[str, Any] | None:
        """The process's /api/status: counters, backlog, the stream sequences it holds and
        those it was given again lately (blocking); None while it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status",
                                        timeout=1) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except OSError:
            return None

    def board(self, path: str = "/api/board") -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                    timeout=2) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer

    async def up(self, within_s: float = 20.0) -> None:
        async with asyncio.timeout(within_s):
            while await asyncio.to_thread(self.status) is None:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it holds its connections and does nothing."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # a paused one must hear the SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


async def accepted_alarms(journal: Journal) -> list[DeviceEvent]:
    """Every alarm-class event a running gateway journalled, in journal order."""
    out: list[DeviceEvent] = []
    upto = 0
    while True:
        batch = await journal.read_after(upto, 5000)
        if batch.upto <= upto:
            return out
        out += [e.record for e in batch.entries if isinstance(e.record, DeviceEvent)
                and e.record.cls is DeliveryClass.ALARM]
        upto = batch.upto


@dataclass
class CityVerdict:
    accepted: int
    lost_store: int
    store_duplicates: int
    stream_same_id: int  # copies of one record id in the stream beyond the first
    order_violations: int  # a device's first copies in the stream out of acceptance order
    extra: dict[str, int] = field(default_factory=dict)

    def print(self, scenario: str) -> None:
        print(f"[{scenario}] accepted alarms={self.accepted} lost(store)={self.lost_store} "
              f"store duplicates={self.store_duplicates} stream copies={self.stream_same_id} "
              f"order violations={self.order_violations} {self.extra}")


Streamed = list[tuple[str, dict[str, Any]]]


async def stream_records(js: JetStreamContext, stream: str, district: str) -> Streamed:
    """Every message of `district` in the stream, in stream order: (subject, payload)."""
    async with asyncio.timeout(60):
        while True:  # a node that just came back may hold the consumer's creation up
            try:
                sub = await js.pull_subscribe(
                    f"sc.{district}.>", stream=stream,
                    config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE,
                                              deliver_policy=api.DeliverPolicy.ALL,
                                              inactive_threshold=30.0))
                break
            except TimeoutError:
                await asyncio.sleep(0.5)
    out: Streamed = []
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=0.5)
            except TimeoutError:
                if (await sub.consumer_info()).num_pending == 0:
                    break
                continue
            out += [(m.subject, json.loads(m.data)) for m in msgs]
    finally:
        await sub.unsubscribe()
    return out


async def judge_compound(accepted: list[DeviceEvent], streamed: Streamed, store_url: str,
                         district: str, site: str) -> CityVerdict:
    """One compound's alarms: in the store once each (per series and timestamp), and in the
    stream in each device's order of acceptance (first copies)."""
    mine = [payload for subject, payload in streamed
            if subject.split(".")[2] == site and payload.get("rec") == "event"]
    copies: dict[str, int] = defaultdict(int)
    for payload in mine:
        copies[str(payload["id"])] += 1
    order = {e.id: n for n, e in enumerate(accepted)}
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for payload in mine:
        record_id = str(payload["id"])
        if record_id in order and record_id not in seen:
            seen.add(record_id)
            first[str(payload.get("device"))].append(order[record_id])
    violations = sum(1 for seq in first.values() for a, b in itertools.pairwise(seq) if b < a)
    series = await asyncio.to_thread(
        export, store_url, f'sc_event_count{{district="{district}",site="{site}"}}')
    stored: dict[tuple[str, int], int] = defaultdict(int)
    for s in series:
        for ts in s.timestamps:
            stored[(s.labels["device"], ts)] += 1
    wanted = {(e.device, e.ts) for e in accepted}
    return CityVerdict(
        accepted=len(accepted),
        lost_store=sum(1 for key in wanted if key not in stored),
        store_duplicates=sum(n - 1 for n in stored.values()) + len(stored.keys() - wanted),
        stream_same_id=sum(n - 1 for n in copies.values()),
        order_violations=violations,
        extra={"streamed": len(mine)})
