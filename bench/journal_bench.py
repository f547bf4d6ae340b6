"""Journal append throughput: alarm-class events from N concurrent producers.

Each producer appends one elder-button press after another and waits, as a driver does,
until its record is on disk. Appends that arrive while a commit runs share the next
transaction, so the commits per record show how well group commit works.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row
from bench.stats import Summary
from gateway.core.kinds import make_event
from gateway.core.model import DeliveryClass, DeviceEvent, DeviceKind
from gateway.journal import Journal

WARMUP_RECORDS = 20


@dataclass(frozen=True, slots=True)
class JournalResult:
    producers: int
    seconds: float
    records: int
    commits: int
    append: Summary

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def commits_per_record(self) -> float:
        return self.commits / self.records if self.records else float("nan")


def _press(device: str) -> DeviceEvent:
    event = make_event(DeviceKind.ELDER_BUTTON, device, "press", time.time_ns() // 1_000_000,
                       {"duration_ms": 120})
    assert event.cls is DeliveryClass.ALARM
    return event


async def measure(path: Path, producers: int, seconds: float) -> JournalResult:
    """Append for `seconds` from `producers` tasks into a fresh journal at `path`."""
    async with Journal(path) as journal:
        for _ in range(WARMUP_RECORDS):  # creates the WAL and warms the page cache
            await journal.append(_press("warmup"))
        commits0, records0 = journal.commits, journal.records_written
        latencies: list[float] = []
        stop = asyncio.Event()

        async def producer(index: int) -> None:
            device = f"elder-{index}"
            while not stop.is_set():
                event = _press(device)
                started = time.perf_counter()
                await journal.append(event)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for index in range(producers):
                group.create_task(producer(index), name=f"bench.journal.producer{index}")
            await asyncio.sleep(seconds)
            stop.set()
        elapsed = time.perf_counter() - started
        return JournalResult(producers, elapsed, journal.records_written - records0,
                             journal.commits - commits0, Summary.of_seconds(latencies))


async def run(workdir: Path, producer_counts: list[int], seconds: float) -> list[Row]:
    rows = []
    for producers in producer_counts:
        result = await measure(workdir / f"journal-{producers}.db", producers, seconds)
        rows.append(Row(
            "journal append",
            f"{producers} producer{'s' if producers > 1 else ''}, alarm events",
            f"{result.records_per_s:,.0f} records/s",
            f"{result.commits_per_record:.3f} commits/record "
            f"({result.records / max(result.commits, 1):.1f} records/commit); "
            f"append p50/p99 {result.append.p50:.1f}/{result.append.p99:.1f} ms; "
            f"{result.records:,} records in {result.seconds:.1f} s",
            {"producers": producers, "records": result.records, "commits": result.commits,
             "seconds": result.seconds, "records_per_s": result.records_per_s,
             "commits_per_record": result.commits_per_record,
             **{f"append_{k}": v for k, v in result.append.as_dict().items()}},
        ))
    return rows
