"""Temperature gates that push over HTTP and keep what was not taken, and a LAN that floods
the push port with connections.

A push gate's firmware keeps its passages while the gateway does not take them and posts
them again, oldest first, once it does (the vendors' "断网续传"): each `PushingGate` holds a
backlog, adds a passage to it at its own pace whatever happens to its pushes, and sends the
oldest one at a time. A 2xx answer takes it off the backlog; a 503 or 429 leaves it there
until `Retry-After` (scaled by `retry_scale`) has passed; a push without an answer (the
gateway is down, the connection was closed) leaves it there for `retry_s`. Every passage
carries its number (`passages`), so what reached the store can be told apart passage by
passage. A tenth of them (`fever_every`) are fevers, which the gateway answers 200 once
journalled; the rest are readings alone, answered 202.

`ConnectionFlood` keeps `count` connections open to the port from a set of source
addresses, idle or sending a request head that never ends, and opens each again when the
gateway closes it.

    python -m simulators.push_fleet --url http://127.0.0.1:8080 --gates 100 --rate 15 \
        --seconds 60 --flood 1000 --out ledger.json   # then "go" on stdin
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

NORMAL_X10 = 365
FEVER_X10 = 385  # at or above 38.0 °C: the gateway's fever rule alerts on one passage


@dataclass(slots=True)
class Ledger:
    """What one gate knows of its passages."""

    produced: int = 0
    taken: list[int] = field(default_factory=list)  # passages answered 2xx, in order
    fevers_taken: int = 0
    answers: Counter[int] = field(default_factory=Counter)  # every status received
    failed: int = 0  # pushes without an answer (refused connection, closed, timed out)
    errors: Counter[str] = field(default_factory=Counter)  # of those, by exception
    # passages of which a push went without an answer before one was taken: the gateway
    # may have taken that one too
    uncertain: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)  # seconds, of the 2xx pushes

    @property
    def refused(self) -> int:
        """Answers that refused a push for load (503 busy, 429 throttled)."""
        return self.answers[503] + self.answers[429]

    def as_dict(self) -> dict[str, Any]:
        return {"produced": self.produced, "taken": len(self.taken),
                "fevers_taken": self.fevers_taken,
                "answers": {str(k): v for k, v in sorted(self.answers.items())},
                "failed": self.failed, "errors": dict(self.errors),
                "uncertain": len(self.uncertain)}


def passage_body(n: int, fever: bool) -> bytes:
    """The gate's JSON for its passage number `n` (profile http-temp-gate)."""
    return msgspec.json.encode({"temp_x10": FEVER_X10 if fever else NORMAL_X10,
                                "abnormal": int(fever), "mask": 1, "passages": n})


class PushingGate:
    """One gate with its backlog and its own connection (from `local_address`)."""

    def __init__(self, base_url: str, device: str, token: str, *,
                 local_address: str | None = None, fever_every: int = 10,
                 retry_s: float = 0.2, retry_scale: float = 1.0, timeout_s: float = 10.0,
                 first: int = 1) -> None:
        self.device = device
        self.url = f"{base_url.rstrip('/')}/push/{device}"
        self._headers = {"Content-Type": "application/json",
                         "Authorization": f"Bearer {token}"}
        self._local = local_address
        self._fever_every = fever_every
        self._retry_s = retry_s
        self._retry_scale = retry_scale
        self._timeout_s = timeout_s
        self._next = first
        self.backlog: deque[int] = deque()
        self.ledger = Ledger()
        self._waiting = asyncio.Event()  # set while the backlog holds passages
        self.empty = asyncio.Event()  # set while it holds none
        self.empty.set()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PushingGate:
        connector = aiohttp.TCPConnector(
            limit=1, local_addr=(self._local, 0) if self._local else None)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def fever(self, n: int) -> bool:
        return self._fever_every > 0 and n % self._fever_every == 0

    def pass_one(self) -> int:
        """A person passes: a passage joins the backlog. Its number."""
        n = self._next
        self._next += 1
        self.ledger.produced += 1
        self.backlog.append(n)
        self.empty.clear()
        self._waiting.set()
        return n

    async def send_forever(self) -> None:
        """Push the backlog, oldest first, one at a time; wait while it is empty."""
        while True:
            if not self.backlog:
                self._waiting.clear()
                self.empty.set()
                await self._waiting.wait()
                continue
            n = self.backlog[0]
            delay = await self._push(n)
            if delay is None:
                self.backlog.popleft()
            else:
                await asyncio.sleep(delay)

    async def _push(self, n: int) -> float | None:
        """None if the passage was taken, else how long to wait before sending it again."""
        assert self._session is not None, "use PushingGate as `async with`"
        fever = self.fever(n)
        started = time.monotonic()
        try:
            async with self._session.post(self.url, data=passage_body(n, fever),
                                          headers=self._headers) as response:
                await response.read()
                status = response.status
                after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.ledger.failed += 1
            self.ledger.errors[type(exc).__name__] += 1
            self.ledger.uncertain.add(n)
            return self._retry_s
        self.ledger.answers[status] += 1
        if 200 <= status < 300:
            self.ledger.taken.append(n)
            self.ledger.fevers_taken += fever
            self.ledger.latencies.append(time.monotonic() - started)
            return None
        if status in (429, 503):
            wait = float(after) if after and after.isdigit() else 1.0
            return wait * self._retry_scale
        return self._retry_s  # anything else: the device tries again later

    async def produce(self, rate_hz: float, seconds: float) -> None:
        """Passages at `rate_hz` for `seconds`, on schedule whatever the pushes do."""
        start = time.monotonic()
        count = round(rate_hz * seconds)
        for k in range(count):
            await asyncio.sleep(max(start + k / rate_hz - time.monotonic(), 0))
            self.pass_one()


class Fleet:
    """Pushing gates, one per (device, token), each from the next of `addresses` in turn;
    `gate`: more arguments of every PushingGate."""

    def __init__(self, base_url: str, devices: Sequence[tuple[str, str]],
                 addresses: Sequence[str] | None = None, **gate: Any) -> None:
        self.gates = [PushingGate(base_url, device, token,
                                  local_address=addresses[i % len(addresses)]
                                  if addresses else None, **gate)
                      for i, (device, token) in enumerate(devices)]
        self._stack = contextlib.AsyncExitStack()
        self._senders: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Fleet:
        for gate in self.gates:
            await self._stack.enter_async_context(gate)
        self._senders = [asyncio.create_task(g.send_forever(), name=f"fleet.{g.device}")
                         for g in self.gates]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        await self._stack.aclose()

    async def produce(self, rate_hz: float, seconds: float) -> None:
        """Every gate passes `rate_hz` people a second for `seconds`."""
        await asyncio.gather(*(g.produce(rate_hz, seconds) for g in self.gates))

    @property
    def backlog(self) -> int:
        return sum(len(g.backlog) for g in self.gates)

    async def drained(self, within_s: float) -> None:
        """Wait until every gate's backlog is empty."""
        async with asyncio.timeout(within_s):
            await asyncio.gather(*(g.empty.wait() for g in self.gates))

    def totals(self) -> dict[str, Any]:
        answers: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        for g in self.gates:
            answers.update(g.ledger.answers)
            errors.update(g.ledger.errors)
        return {"produced": sum(g.ledger.produced for g in self.gates),
                "taken": sum(len(g.ledger.taken) for g in self.gates),
                "fevers_taken": sum(g.ledger.fevers_taken for g in self.gates),
                "refused": sum(g.ledger.refused for g in self.gates),
                "failed": sum(g.ledger.failed for g in self.gates),
                "uncertain": sum(len(g.ledger.uncertain) for g in self.gates),
                "backlog": self.backlog,
                "answers": {str(k): v for k, v in sorted(answers.items())},
                "errors": dict(errors)}


class ConnectionFlood:
    """`count` connections to host:port from `addresses`, kept open: idle, or every
    `slow_every`-th one a request head that never ends; each one the gateway closes (or
    refuses) is opened again after `reopen_s`."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], count: int = 1000,
                 *, slow_every: int = 2, reopen_s: float = 1.0) -> None:
        self._host = host
        self._port = port
        self._addresses = list(addresses)
        self._count = count
        self._slow_every = slow_every
        self._reopen_s = reopen_s
        self._tasks: list[asyncio.Task[None]] = []
        self.open = 0  # connections open now (as the flood sees them)
        self.opened = 0  # connections made in all
        self.closed_by_server = 0

    async def __aenter__(self) -> ConnectionFlood:
        self._tasks = [asyncio.create_task(self._hold(n), name=f"flood.{n}")
                       for n in range(self._count)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _hold(self, n: int) -> None:
        address = self._addresses[n % len(self._addresses)]
        slow = self._slow_every > 0 and n % self._slow_every == 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, local_addr=(address, 0))
            except OSError:
                await asyncio.sleep(self._reopen_s)
                continue
            self.open += 1
            self.opened += 1
            try:
                if slow:  # a request head that never ends
                    writer.write(b"POST /push/gate-1 HTTP/1.1\r\nHost: gw\r\n")
                with contextlib.suppress(OSError):
                    await reader.read()  # until the gateway closes it
                self.closed_by_server += 1
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(self._reopen_s)


@dataclass
class Flooder:
    """One device pushing readings at a rate over `connections` connections, deaf to 429
    and Retry-After (a gate gone mad)."""

    url: str
    token: str
    address: str
    answers: Counter[int]
    sent: int = 0

    async def run(self, rate_hz: float, seconds: float, connections: int = 16) -> float:
        """Push at `rate_hz` for `seconds` (slower if the answers come slower); the rate
        achieved (requests a second)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        body = b'{"temp_x10": 365, "abnormal": 0, "mask": 1, "passages": 0}'
        connector = aiohttp.TCPConnector(limit=connections, local_addr=(self.address, 0))
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        before = self.sent
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one_connection(k: int) -> None:
                every_s = connections / rate_hz
                due = started + k / rate_hz
                while time.monotonic() < deadline:
                    await asyncio.sleep(max(due - time.monotonic(), 0))
                    due += every_s
                    try:
                        async with session.post(self.url, data=body,
                                                headers=headers) as response:
                            await response.read()
                            self.answers[response.status] += 1
                    except aiohttp.ClientError:
                        self.answers[0] += 1
                    self.sent += 1

            await asyncio.gather(*(one_connection(k) for k in range(connections)))
        return (self.sent - before) / (time.monotonic() - started)


# -- a storm from a process of its own --------------------------------------------------------


async def storm(args: argparse.Namespace) -> None:
    """JSON lines on stdout: `ready`; on a `go` line on stdin, the flood is opened and
    `started` printed; the gates pass people for --seconds (`produced`, with the backlog
    left); the backlogs are pushed until empty (`drained`, with the totals). The passages
    each gate had taken, and those sent without an answer, go to --out. With --flooder,
    each `flood S` line on stdin after `go` has the flooder push for S seconds
    (`flooded`, with that turn's requests and answers)."""
    addresses = [f"{args.gate_net}.{n % 250 + 1}" for n in range(args.gates)]
    devices = [(f"gate-{n}", args.token_template.format(n=n))
               for n in range(1, args.gates + 1)]
    loop = asyncio.get_running_loop()
    flood_addresses = [f"{args.flood_net}.{n}" for n in range(2, 2 + args.flood_addresses)]
    fleet = Fleet(args.url, devices, addresses, retry_s=args.retry_s,
                  retry_scale=args.retry_scale, fever_every=args.fever_every)
    host, _, port = args.url.removeprefix("http://").rstrip("/").partition(":")
    async with fleet:
        _say(ready=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            return
        flooder = (Flooder(f"{args.url.rstrip('/')}/push/{args.flooder}",
                           args.token_template.format(n=int(args.flooder.rsplit("-", 1)[1])),
                           args.flooder_address, Counter())
                   if args.flooder else None)
        async with contextlib.AsyncExitStack() as stack:
            flood = None
            if args.flood:
                flood = await stack.enter_async_context(ConnectionFlood(
                    host, int(port), flood_addresses, args.flood, reopen_s=args.reopen_s))
                await asyncio.sleep(args.flood_lead_s)
            _say(started=True, flood_open=flood.open if flood else 0)
            started = time.monotonic()
            turns = (asyncio.ensure_future(_flood_turns(flooder, args.flooder_rate))
                     if flooder else None)
            await fleet.produce(args.rate, args.seconds)
            produced_s = time.monotonic() - started
            if turns is not None:
                turns.cancel()
                await asyncio.gather(turns, return_exceptions=True)
            _say(produced=fleet.totals()["produced"], backlog=fleet.backlog,
                 seconds=produced_s, flood_opened=flood.opened if flood else 0,
                 flooder_sent=flooder.sent if flooder else 0,
                 flooder_answers={str(k): v for k, v in flooder.answers.items()}
                 if flooder else {})
        await fleet.drained(args.drain_within_s)
        totals = fleet.totals()
        totals["drained_s"] = time.monotonic() - started
        latencies = sorted(s for g in fleet.gates for s in g.ledger.latencies)
        if latencies:
            totals["push_p50_ms"] = latencies[len(latencies) // 2] * 1000
            totals["push_p99_ms"] = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        ledger = {g.device: {"taken": g.ledger.taken, "uncertain": sorted(g.ledger.uncertain)}
                  for g in fleet.gates}
        await asyncio.to_thread(Path(args.out).write_text, json.dumps(ledger))
        _say(drained=True, **totals)


async def _flood_turns(flooder: Flooder, rate_hz: float) -> None:
    """The flooder pushes for S seconds on each `flood S` line of stdin, one turn at a
    time; `flooded` after each, with the turn's requests, rate and answers."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        word, _, seconds = line.strip().partition(" ")
        if word != "flood":
            continue
        sent, answers = flooder.sent, Counter(flooder.answers)
        per_s = await flooder.run(rate_hz, float(seconds))
        _say(flooded=flooder.sent - sent, per_s=per_s,
             answers={str(k): v for k, v in (flooder.answers - answers).items()})


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="pushing gates with a backlog each, and a "
                                     "flood of connections, against an HTTP push port")
    parser.add_argument("--url", required=True, help="the push port, http://HOST:PORT")
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--rate", type=float, default=15.0, help="passages a second per gate")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fever-every", type=int, default=10)
    parser.add_argument("--token-template", default="gate-token-{n:04d}-0123456789abcdef")
    parser.add_argument("--gate-net", default="127.0.1", help="gates push from NET.1 ...")
    parser.add_argument("--retry-s", type=float, default=0.2)
    parser.add_argument("--retry-scale", type=float, default=1.0,
                        help="times Retry-After that a gate waits after a 503 or 429")
    parser.add_argument("--flood", type=int, default=0, help="connections held open")
    parser.add_argument("--flood-net", default="127.0.0")
    parser.add_argument("--flood-addresses", type=int, default=20)
    parser.add_argument("--reopen-s", type=float, default=1.0)
    parser.add_argument("--flood-lead-s", type=float, default=1.0)
    parser.add_argument("--flooder", help="a device (gate-N) that floods the port with "
                        "readings, deaf to 429, over 16 connections, for S seconds on each "
                        "`flood S` line on stdin")
    parser.add_argument("--flooder-rate", type=float, default=2000.0)
    parser.add_argument("--flooder-address", default="127.0.2.1")
    parser.add_argument("--drain-within-s", type=float, default=300.0)
    parser.add_argument("--out", required=True, help="the gates' ledger (JSON)")
    asyncio.run(storm(parser.parse_args()))


if __name__ == "__main__":
    main()
