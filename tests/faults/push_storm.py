"""What the HTTP push storm, replay and flood share: gates and door controllers on the push
port, forced-door alarms timed to their alert, and the readings' account against the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from drivers.http_push import HttpPushReceiver
from drivers.profile import ProfileLibrary
from gateway.core.config import GatewayConfig
from gateway.ops.store_query import export
from gateway.supervisor import Gateway
from simulators.http_pusher import HttpPusher
from simulators.push_fleet import Fleet, PushingGate
from tests.helpers import Watcher, eventually, make_config

GATE_ADDRESSES = [f"127.0.1.{n}" for n in range(1, 201)]  # each gate its own
FLOOD_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 22)]  # doors push from 127.0.0.1
REPO = Path(__file__).resolve().parents[2]


def gate_token(n: int) -> str:
    return f"gate-token-{n:04d}-0123456789abcdef"


def door_token(n: int) -> str:
    return f"door-token-{n:04d}-0123456789abcdef"


def push_config(tmp_path: Path, site: str, broker_port: int, store_url: str, port: int,
                *, gates: int, doors: int, http: dict[str, Any] | None = None,
                **extra: Any) -> GatewayConfig:
    devices = [{"id": f"gate-{n}", "kind": "temp_gate", "transport": "http",
                "profile": "http-temp-gate", "http": {"token": gate_token(n)}}
               for n in range(1, gates + 1)]
    devices += [{"id": f"door-{n}", "kind": "access", "transport": "http",
                 "profile": "http-access-controller", "http": {"token": door_token(n)}}
                for n in range(1, doors + 1)]
    return make_config(tmp_path, site=site, broker_port=broker_port, store_url=store_url,
                       shutdown_timeout_s=0.5, devices=devices,
                       http={"host": "127.0.0.1", "port": port, **(http or {})}, **extra)


def fleet(port: int, gates: int, **gate: Any) -> Fleet:
    """Gates gate-1 ... gate-N, each pushing from its own address, keeping a backlog."""
    return Fleet(f"http://127.0.0.1:{port}",
                 [(f"gate-{n}", gate_token(n)) for n in range(1, gates + 1)],
                 GATE_ADDRESSES, **gate)


def receiver_of(gateway: Gateway) -> HttpPushReceiver:
    (receiver,) = [d for d in gateway.drivers if isinstance(d, HttpPushReceiver)]
    return receiver


@contextlib.asynccontextmanager
async def doors(port: int, count: int) -> AsyncIterator[list[HttpPusher]]:
    profile = ProfileLibrary().get("http-access-controller")
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(HttpPusher(
            profile, f"http://127.0.0.1:{port}", f"door-{n}", door_token(n)))
            for n in range(1, count + 1)]


@dataclass(frozen=True)
class Alarm:
    answered_s: float  # from the push to its 200
    alerted_s: float  # from the push to the alert firing on MQTT


async def forced_door(door: HttpPusher, duty: Watcher) -> Alarm:
    """Force `door` open (the device gives its push again when it gets no answer, as a
    door controller does)."""
    pushed = time.monotonic()
    async with asyncio.timeout(10):
        while True:
            try:
                result = await door.push({"event.code": 20})
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                continue
            assert result.status == 200, result
            break
    answered = time.monotonic() - pushed
    await duty.next(lambda s: s.topic.endswith(f"/access.forced_open/{door.device}")
                    and b'"firing"' in s.payload, timeout=10)
    return Alarm(answered, time.monotonic() - pushed)


async def alarms_every(doors_: Sequence[HttpPusher], duty: Watcher, every_s: float,
                       first_after_s: float = 0.5) -> list[Alarm]:
    """One forced door every `every_s`, each door once."""
    alarms = []
    start = time.monotonic() + first_after_s
    for k, door in enumerate(doors_):
        await asyncio.sleep(max(start + k * every_s - time.monotonic(), 0))
        alarms.append(await forced_door(door, duty))
    return alarms


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def stored_passages(store_url: str, site: str) -> dict[str, Counter[int]]:
    """Per gate, how often each passage number is in the store (blocking)."""
    out: dict[str, Counter[int]] = {}
    for series in export(store_url, f'sc_temp_gate_passage_count{{site="{site}"}}',
                         timeout=30):
        out.setdefault(series.labels["device"], Counter()).update(
            round(v) for v in series.values)
    return out


@dataclass(frozen=True)
class Account:
    """The gates' passages answered 2xx against the store."""

    taken: int  # answered 2xx, by the gates' count
    stored: int  # distinct passages in the store
    missing: int  # taken, not in the store
    twice: int  # in the store more than once (sent without an answer or not)
    unknown: int  # in the store, never taken nor sent without an answer
    uncertain: int  # sent without an answer before being taken (may be stored twice)

    def print(self, scenario: str, **more: object) -> None:
        print(f"[{scenario}] taken={self.taken} stored={self.stored} missing={self.missing} "
              f"twice={self.twice} unknown={self.unknown} uncertain={self.uncertain} "
              + " ".join(f"{k}={v}" for k, v in more.items()))


Taken = dict[str, tuple[list[int], set[int]]]  # per gate: passages taken, sent unanswered


def taken_by(gates: Sequence[PushingGate]) -> Taken:
    return {g.device: (g.ledger.taken, g.ledger.uncertain) for g in gates}


def account(gates: Taken, stored: dict[str, Counter[int]]) -> Account:
    taken = missing = twice = unknown = uncertain = distinct = 0
    for device, (took_list, unanswered) in gates.items():
        in_store = stored.get(device, Counter())
        took = set(took_list)
        taken += len(took)
        distinct += len(in_store)
        uncertain += len(unanswered)
        missing += len(took - set(in_store))
        twice += sum(1 for copies in in_store.values() if copies > 1)
        unknown += sum(1 for n in in_store if n not in took and n not in unanswered)
    return Account(taken, distinct, missing, twice, unknown, uncertain)


async def settled_account(gateway: Gateway, gates: Sequence[PushingGate] | Taken,
                          store_url: str, site: str) -> Account:
    """Once the store sink caught up: the account, as soon as nothing taken is missing (or
    after 15 s, whatever it is then)."""
    await eventually(lambda: gateway.store_sink.cursor >= gateway.journal.last_seq
                     and not gateway.telemetry.pending("store"), timeout=60,
                     what="the store sink caught up")
    result: list[Account] = []
    ledgers = gates if isinstance(gates, dict) else taken_by(gates)

    async def complete() -> bool:
        stored = await asyncio.to_thread(stored_passages, store_url, site)
        result[:] = [account(ledgers, stored)]
        return result[0].missing == 0

    with contextlib.suppress(AssertionError):
        await eventually(complete, timeout=15, interval=0.5, what="every passage stored")
    return result[0]


class FleetProcess:
    """`python -m simulators.push_fleet` (gates with a backlog each and a flood of
    connections) in a process of its own, so that the devices' work is not done on the
    gateway's event loop; JSON lines in and out."""

    def __init__(self, port: int, out: Path, **options: object) -> None:
        self.out = out
        self._argv = [sys.executable, "-m", "simulators.push_fleet",
                      "--url", f"http://127.0.0.1:{port}", "--out", str(out),
                      "--token-template", "gate-token-{n:04d}-0123456789abcdef"]
        for name, value in options.items():
            self._argv += [f"--{name.replace('_', '-')}", str(value)]
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FleetProcess:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=REPO)
        assert (await self.read(30))["ready"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()

    async def read(self, within_s: float) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), within_s)
        if not line:
            raise AssertionError(f"the fleet ended ({await self._proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def go(self) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"go\n")
        await self._proc.stdin.drain()

    def ledger(self) -> Taken:
        data = json.loads(self.out.read_text())
        return {device: (entry["taken"], set(entry["uncertain"]))
                for device, entry in data.items()}
