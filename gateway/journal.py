"""The durable, ordered journal: an append-only SQLite log in WAL mode with a cursor per consumer.

Every append is committed before the awaiting caller resumes, so a record the gateway has
accepted survives a crash. Alarms, alerts, notifications and acknowledgements are committed
with synchronous=FULL (an fsync) and survive a power cut too; other device events ride on
the next fsync, or get one within EVENT_SYNC_S (the SD card's budget). Appends that arrive
while a commit is running are grouped into the next transaction: one fsync serves many
records. All SQLite work runs on one dedicated thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.core.journaling import Batch as Batch
from gateway.core.journaling import Entry as Entry
from gateway.core.journaling import Receipt as Receipt
from gateway.core.model import (
    DeliveryClass,
    DeviceEvent,
    Record,
    decode,
    delivery_class,
    encode,
)
from gateway.core.waiting import Signal
from gateway.lock_handover import handed_over_sooner, precise_waits, shorter_switches
from gateway.receipt_memory import ReceiptMemory

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    cls TEXT NOT NULL,
    body BLOB NOT NULL,
    receipt TEXT,
    digest BLOB,
    at INTEGER
);
CREATE TABLE IF NOT EXISTS cursors (
    consumer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""
# the audit of what left for each upstream (see SharedRow), written in the transaction that
# moves the upstream's cursor; made with the first row, so a gateway that shares nothing
# keeps the journal it had
_SHARED_TABLE = """
CREATE TABLE IF NOT EXISTS shared (
    upstream TEXT NOT NULL,
    record_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    fields TEXT NOT NULL,
    personal TEXT NOT NULL,
    basis TEXT NOT NULL,
    at INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (upstream, record_id)
) WITHOUT ROWID;
"""
# Journals made before keep the tables they were made with, and work the same: receipts in
# a table of their own, sequence numbers from SQLite's AUTOINCREMENT (a row of
# sqlite_sequence rewritten with every commit).
_RECEIPTS_TABLE = """
CREATE TABLE IF NOT EXISTS receipts (
    key TEXT PRIMARY KEY,
    digest BLOB NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
"""
# Every page a commit changes is written whole, so a commit of a door opened writes as few
# b-trees as it can: its record carries the receipt of the message it came in (no receipts
# table), and sequence numbers come from the records themselves (no AUTOINCREMENT: the
# newest record is never pruned, so a number is never given twice). Tables keyed by text
# are kept in their key's b-tree alone (WITHOUT ROWID): one b-tree's pages instead of a
# table's and its index's.


# longest a lazy cursor move waits for a commit to ride along with: a commit of its own
# writes a page or two to the disk, so they are few (a power cut replays at most this much)
LAZY_S = 60.0
# the longest a device event that is not an alarm waits for an fsync (one of its own, or
# the next alarm's): the same order as the kernel's own writeback of dirty pages (30 s)
EVENT_SYNC_S = 30.0
# the page of a new journal: a commit writes every page it changes whole, and most change
# a few bytes of a record, a cursor or a receipt (SQLite's default is 4096)
PAGE_SIZE = 1024
RECENT = 4096  # newest records kept in memory for readers
MEASURE_EVERY_S = 0.5  # how stale the journal's size may be when no limit is near
MEASURE_MARGIN = 64 * 2**20  # free disk closer than this to the reserve: measure every commit
WAL_HELD = 8 * 2**20  # the write-ahead log's size, allocated on the disk from the start
ROWS_PER_STATEMENT = 200  # rows of one multi-row INSERT (3 values each: 600 variables)


def _needs_fsync(record: Record) -> bool:
    if isinstance(record, DeviceEvent):
        return record.cls is DeliveryClass.ALARM
    return True  # alerts, notifications, acknowledgements


class JournalClosedError(Exception):
    """The journal was closed; nothing more can be appended."""


class JournalBusyError(Exception):
    """The journal's database is held by another process."""


class NotJournalledError(Exception):
    """A commit did not happen: none of its records is on disk, so none was received."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class JournalFullError(NotJournalledError):
    """No room for this record: its class's share of the quota or of the disk is used up."""


@dataclass(frozen=True, slots=True)
class Quota:
    """Events may fill the journal up to `max_bytes - alarm_reserve`; alarms up to all of it.

    `min_free_disk` is kept free on the file system for events; alarms may use it too.
    `alarm_reserve` is also held on the disk itself, as a file beside the journal that is
    given up only when an alarm finds the disk full.
    """

    max_bytes: int = 512 * 2**20
    alarm_reserve: int = 32 * 2**20
    min_free_disk: int = 64 * 2**20


@dataclass(frozen=True, slots=True)
class SharedRow:
    """One record an upstream confirmed: who got it, under which policy rule, which fields.

    `subject` is the local device (or place) the record is about, as it never leaves;
    `personal` lists `field:class:clear|pseudonym` of the personal fields that went; `at`
    is when the upstream confirmed it (epoch ms).
    """

    upstream: str
    record_id: str
    seq: int
    rule: str
    subject: str
    kind: str
    type: str
    fields: str  # comma-separated
    personal: str  # comma-separated field:class:how
    basis: str  # "" or "law: reference"
    at: int
    deliveries: int = 1


@dataclass(slots=True)
class _Commit:
    records: Sequence[Record]
    cursor: tuple[str, int] | None
    state: dict[str, bytes | None]
    done: asyncio.Future[list[int]]
    durable: bool = True
    encoded: list[tuple[str, bytes]] = field(default_factory=list)
    receipt: Receipt | None = None
    alarm: bool = False
    shared: Sequence[SharedRow] = ()
    # the cursor moves past the job's own records too, when they follow right after it
    through_own: bool = False
    message: int | None = None  # the receipt goes on the last of this many records (None: all)
    also: Sequence[asyncio.Future[list[int]]] = ()  # answered with `done`


class FrontOfLine:
    """The journal's next commit, held for one caller (see `Journal.front_of_line`)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.used = False

    def commit(self, records: Sequence[Record], *, message: int, cursor: tuple[str, int],
               state: dict[str, bytes | None], receipt: Receipt | None = None,
               also: Sequence[asyncio.Future[list[int]]] = ()) -> asyncio.Future[list[int]]:
        """Queue `records` as the next commit, durably, ahead of whatever waits; the
        cursor moves past them too when nothing came between. `receipt` goes with the
        first `message` records. Answers the returned future and `also` with the seqs."""
        if self.used:
            raise RuntimeError("the front of the line commits once")
        self.used = True
        return self._journal._queue(records, cursor, state, receipt, durable=True,
                                    first=True, message=message, also=also)


class Journal:
    """Append-only log with consumer cursors and a small key-value store for rule state."""

    def __init__(self, path: Path, *, max_group: int = 512, quota: Quota | None = None) -> None:
        self._path = path
        self._wal = path.with_name(path.name + "-wal")  # SQLite's write-ahead log
        self._quota = quota or Quota()
        self._reserve = ReserveFile(path.with_name(path.name + ".reserve"),
                                    self._quota.alarm_reserve)
        self.used_bytes = 0  # pages in use by the database, refreshed after every commit
        self.free_disk = 2**62  # free bytes on the journal's file system
        self._max_group = max_group
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal",
                                            initializer=precise_waits)
        self._db: sqlite3.Connection | None = None
        self._pending: list[_Commit] = []
        self._lazy: dict[str, int] = {}  # cursor moves waiting for a commit to ride along
        self._lazy_since: float | None = None  # time.monotonic() of the oldest waiting move
        self._inline_receipts = True  # receipts kept on their records (see _SCHEMA)
        self._shared_table = False  # the audit's table exists (see _SHARED_TABLE)
        self._cursors: dict[str, int] = {}  # as committed; journal thread only
        self._synchronous = True  # PRAGMA synchronous is FULL (else NORMAL); journal thread
        # the newest committed records, consecutive: most reads are served from here
        self._recent: deque[Entry] = deque(maxlen=RECENT)
        self._receipts = ReceiptMemory()  # every receipt kept, by key
        self._measured_at = -math.inf  # time.monotonic() of the last exact measurement
        self._wake = asyncio.Event()  # anything to commit
        self._urgent = asyncio.Event()  # a commit that does not wait: not a lazy move
        self._flying: list[_Commit] | None = None  # the group being committed
        self._held = False  # the next commit is held for a caller (front_of_line)
        self._front = asyncio.Lock()  # callers waiting for the front of the line
        self._quiet = asyncio.Event()  # set when the group being committed landed
        self._committer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_seq = 0
        self._listeners: list[Signal] = []
        self._closing = False
        self.commits = 0  # with an fsync
        self.lazy_commits = 0  # without
        self.syncs = 0  # fsyncs of records committed without one, EVENT_SYNC_S after
        self._unsynced = False  # records committed since the last fsync; journal thread
        self._syncer: asyncio.Task[None] | None = None
        self.records_written = 0

    async def __aenter__(self) -> Journal:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        # The journal thread takes the interpreter lock back after every SQLite call, and a
        # busy event loop hands it over only every switch interval (5 ms by default): a
        # commit of a few statements then waited tens of milliseconds, and every alarm
        # waits for its commit. Shorter still while a durable commit runs (lock_handover).
        shorter_switches()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._last_seq = await self._run(self._open_sync)
        self._committer = asyncio.create_task(self._commit_loop(), name="journal.commit")

    async def close(self) -> None:
        """Commit what is pending, then close the database."""
        if self._committer is None:
            return
        self._closing = True
        self._wake.set()
        self._urgent.set()
        try:
            await self._committer
        finally:
            self._committer = None
            if self._syncer is not None:
                self._syncer.cancel()
                await asyncio.wait([self._syncer])  # its end, without taking a stop of ours
            await self._run(self._sync_sync)
            await self._run(self._close_sync)
            self._executor.shutdown(wait=True)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def listen(self) -> Signal:
        """An event set after every commit that appended records."""
        event = Signal()
        self._listeners.append(event)
        return event

    async def append(self, record: Record) -> int:
        """Append one record; returns its sequence number once it is on disk."""
        (seq,) = await self.commit([record])
        return seq

    async def commit(
        self,
        records: Sequence[Record] = (),
        *,
        cursor: tuple[str, int] | None = None,
        state: dict[str, bytes | None] | None = None,
        receipt: Receipt | None = None,
        durable: bool | None = None,
        shared: Sequence[SharedRow] = (),
    ) -> list[int]:
        """Atomically append `records`, move one consumer's cursor and update state keys.

        `shared` rows go to the audit of what left for upstreams (a row for a record
        already there counts one more delivery).

        `receipt` is kept with the records (see `receipts`). Raises NotJournalledError
        when nothing was written: no room, or the disk refused the write.

        Durable (with an fsync before the caller resumes): alarm-class events, alerts,
        notifications, acknowledgements, and state without records unless `durable=False`.
        Other device events (a door opened, a device back online) are committed without an
        fsync of their own: the next durable commit syncs them, or the journal does within
        EVENT_SYNC_S; a power cut (not a crash) in between can lose them. `durable=False`
        is for state that may be lost in a power cut.
        """
        if durable is None:
            durable = not records or any(_needs_fsync(r) for r in records)
        elif records and not durable:
            raise ValueError("records are committed as their class needs")
        # not shielded: a caller cancelled meanwhile leaves its records to the commit, as
        # before, and a shield cost one more turn of the loop for every caller
        return await self._queue(records, cursor, state, receipt, durable, shared=shared)

    def _queue(self, records: Sequence[Record], cursor: tuple[str, int] | None,
               state: dict[str, bytes | None] | None, receipt: Receipt | None,
               durable: bool, *, shared: Sequence[SharedRow] = (), first: bool = False,
               message: int | None = None,
               also: Sequence[asyncio.Future[list[int]]] = ()) -> asyncio.Future[list[int]]:
        if records:
            self.check_room(records)
        else:
            self._check_open()
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        job = _Commit(records, cursor, state or {}, done, durable, receipt=receipt,
                      alarm=any(delivery_class(r) is DeliveryClass.ALARM for r in records),
                      shared=shared, through_own=first, message=message, also=also)
        # encode on the loop: cheap, and keeps bad records from reaching the database thread
        job.encoded = [(delivery_class(r).value, encode(r)) for r in records]
        if first:
            self._pending.insert(0, job)
        else:
            self._pending.append(job)
        self._wake.set()
        self._urgent.set()
        return done

    @contextlib.asynccontextmanager
    async def front_of_line(self) -> AsyncIterator[FrontOfLine]:
        """Hold the next commit for the caller: once no commit is under way, nothing is
        committed until the caller queued its commit with the `FrontOfLine` (or left).
        What the journal holds then stays as it is: records read meanwhile are the newest,
        and the caller's commit follows them."""
        async with self._front:  # one caller at a time
            self._check_open()
            self._held = True  # no commit starts from now on
            try:
                while self._flying is not None:
                    self._quiet.clear()
                    await self._quiet.wait()
                yield FrontOfLine(self)
            finally:
                self._held = False
                self._wake.set()

    def _check_open(self) -> None:
        if self._closing or self._committer is None:
            raise JournalClosedError(str(self._path))

    def check_room(self, records: Sequence[Record]) -> None:
        """Raise JournalFullError when `records` would be refused for want of room (and
        JournalClosedError once the journal is closing)."""
        self._check_open()
        q = self._quota
        alarm = any(delivery_class(r) is DeliveryClass.ALARM for r in records)
        if self.used_bytes >= q.max_bytes:
            raise JournalFullError("journal_full")
        if not alarm and self.used_bytes >= q.max_bytes - q.alarm_reserve:
            raise JournalFullError("journal_quota")
        # while alarms use the reserve's space, events find the disk that much fuller
        if not alarm and self.free_disk - self._reserve.missing < q.min_free_disk:
            raise JournalFullError("disk_full")

    async def move_cursor(self, consumer: str, seq: int, *, durable: bool = True) -> None:
        """Move a consumer's cursor (never backwards).

        `durable=False` is for consumers whose replay is harmless (idempotent writes): the
        move rides along with the next commit, or goes within LAZY_S without an fsync of
        its own, and this returns at once. A power cut may then take the cursor back a
        little, and those records are delivered again.
        """
        if not durable:
            self._check_open()
            self._keep_lazy({consumer: seq})
            self._wake.set()
            return
        await self.commit(cursor=(consumer, seq))

    async def cursor(self, consumer: str) -> int:
        stored = await self._run(self._cursor_sync, consumer)
        return max(stored, self._lazy.get(consumer, stored))

    async def read(self, consumer: str, limit: int = 500) -> Batch:
        """Records after `consumer`'s cursor, oldest first."""
        return await self._run(self._read_sync, consumer, limit)

    async def read_after(self, seq: int, limit: int = 500, *, stored: bool = False) -> Batch:
        """Records after sequence number `seq`, oldest first; `stored`: as the database
        holds them, not served from the newest kept in memory."""
        recent = self._recent
        if recent and recent[0].seq <= seq + 1 and not stored:
            # consumers mostly read what was just committed: no trip to the database
            # thread (and its wait for the interpreter lock) for that
            start = seq + 1 - recent[0].seq
            entries = list(itertools.islice(recent, start, start + limit))
            return Batch(entries, entries[-1].seq if entries else max(seq, recent[-1].seq))
        return await self._run(self._read_after_sync, seq, limit)

    async def read_state(self, key: str) -> bytes | None:
        return await self._run(self._state_sync, key)

    async def read_states(self, prefix: str) -> dict[str, bytes]:
        """Every state key starting with `prefix`, with its value."""
        return await self._run(self._states_sync, prefix)

    async def read_shared(self, since_ms: int) -> list[SharedRow]:
        """The audit rows of records upstreams confirmed at or after `since_ms`."""
        return await self._run(self._shared_sync, since_ms)

    async def prune_shared(self, before_ms: int) -> int:
        """Delete the audit rows of records confirmed before `before_ms` (retention)."""
        return await self._run(self._prune_shared_sync, before_ms)

    async def backlog(self, consumer: str) -> int:
        return self._last_seq - await self.cursor(consumer)

    async def prune(self, consumers: Iterable[str], keep_from: int | None = None,
                    receipts_before: int | None = None) -> int:
        """Delete records every named consumer has passed, and older than `keep_from`;
        and receipts older than `receipts_before` (epoch ms)."""
        # deleting what the sinks passed needs their cursors on disk: moves still waiting
        # for a commit to ride along go now, with the pruning (no fsync of their own)
        lazy, self._lazy, self._lazy_since = self._lazy, {}, None
        try:
            gone = await self._run(self._prune_sync, list(consumers), keep_from,
                                   receipts_before, lazy)
        except BaseException:
            self._keep_lazy(lazy)
            raise
        if receipts_before is not None:
            self._receipts.drop_older(receipts_before)
        return gone

    def receipt(self, key: str) -> Receipt | None:
        """The receipt last journalled (or noted) under `key`."""
        return self._receipts.get(key)

    def note(self, receipt: Receipt) -> None:
        """Keep `receipt` in memory only: for messages that left nothing in the journal."""
        self._receipts.put(receipt)

    async def forget_receipts(self, prefix: str) -> None:
        """Forget every receipt whose key starts with `prefix`, in memory and on disk."""
        self._receipts.forget(prefix)
        await self._run(self._forget_receipts_sync, prefix)

    @property
    def reserve_held(self) -> int:
        """Bytes of the alarm reserve still held on the disk."""
        return self._reserve.held

    # -- the committer ---------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._lazy and not self._pending and not self._closing:
                # cursor moves alone: give other commits a moment to come and carry them
                # (other lazy moves join them: the sinks move one after the other)
                self._urgent.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._lazy_left()):  # not wait_for: 3.11's
                        await self._urgent.wait()                   # can drop a stop
                self._wake.clear()
            # lazy moves ride along with durable commits (the fsync is paid anyway); with a
            # commit without one, or alone, only once they waited LAZY_S: each would write
            # the cursors' page again for a door opened
            while not self._held and (
                    self._pending or (self._lazy and (self._lazy_left() <= 0 or self._closing))):
                group, self._pending = (
                    self._pending[: self._max_group],
                    self._pending[self._max_group :],
                )
                durable = _durable(group)
                if self._closing or self._lazy_left() <= 0 or durable:
                    lazy, self._lazy, self._lazy_since = self._lazy, {}, None
                else:
                    lazy = {}
                self._flying = group
                try:
                    with handed_over_sooner(durable):
                        await self._run(self._commit_sync, group, lazy)
                except JournalFullError as exc:
                    # the disk is full: alarms get the reserve's space, the rest is refused
                    alarms = [job for job in group if job.alarm]
                    if not alarms or not await self._run(self._reserve.release):
                        self._fail(group, lazy, exc)
                        if not group:
                            break
                        continue
                    log.error("disk full: the alarm reserve (%d bytes) is given up for "
                              "alarms; events are refused until there is room again",
                              self._quota.alarm_reserve)
                    self._fail([job for job in group if not job.alarm], {}, exc)
                    self._pending[:0] = alarms  # tried again first, in their order
                    self._keep_lazy(lazy)
                    continue
                except Exception as exc:  # a failed commit fails its callers, not the journal
                    self._fail(group, lazy, exc)
                    if not group:
                        break  # nothing else waits: the next wake-up tries them again
                    continue
                finally:
                    self._landed(group)
                # its callers were answered already, by _committed
            if self._closing:
                return
            if self._lazy:
                self._wake.set()  # moves that came meanwhile wait for their own window

    async def _sync_later(self) -> None:
        """Records committed without an fsync reach the disk within EVENT_SYNC_S."""
        try:
            await asyncio.sleep(EVENT_SYNC_S)  # physical time: the disk's, not the schedule's
            await self._run(self._sync_sync)
        finally:
            self._syncer = None

    def _sync_sync(self) -> None:
        if not self._unsynced or self._db is None:
            return  # a durable commit synced them meanwhile
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)  # the log's pages, whoever wrote them
        except OSError as exc:
            log.warning("journal: cannot sync the write-ahead log: %s", exc)
            return
        finally:
            os.close(fd)
        self._unsynced = False
        self.syncs += 1

    def _committed(self, group: list[_Commit], seqs: list[list[int]]) -> None:
        """On the loop, as soon as the journal thread committed `group`: its callers resume
        in the next turn of the loop, not after the committer task's turn as well."""
        self._landed(group)
        if self._unsynced and self._syncer is None and not self._closing:
            self._syncer = asyncio.create_task(self._sync_later(), name="journal.sync")
        for job, job_seqs in zip(group, seqs, strict=True):
            self._remember(job, job_seqs)
            if job.receipt is not None:
                self._receipts.put(job.receipt)
            for done in (job.done, *job.also):
                if not done.done():
                    done.set_result(job_seqs)
        if any(job.records for job in group):
            for listener in self._listeners:
                listener.set()

    def _fail(self, group: list[_Commit], lazy: dict[str, int], exc: Exception) -> None:
        """The commit of `group` failed: its callers hear why; lazy moves wait for the next."""
        if group:
            log.error("journal commit of %d record(s) failed: %s", len(group), exc)
        failure = exc if isinstance(exc, NotJournalledError) else NotJournalledError(
            "write_failed", str(exc))
        for job in group:
            for done in (job.done, *job.also):
                if not done.done():
                    done.set_exception(failure)
        self._keep_lazy(lazy)  # tried again with the next commit

    def _landed(self, group: list[_Commit]) -> None:
        """The commit of `group` is over: the next may be held (front_of_line)."""
        if group is self._flying:
            self._flying = None
            self._quiet.set()

    def _keep_lazy(self, lazy: dict[str, int]) -> None:
        for consumer, seq in lazy.items():
            self._lazy[consumer] = max(seq, self._lazy.get(consumer, seq))
        if self._lazy and self._lazy_since is None:
            self._lazy_since = time.monotonic()

    def _lazy_left(self) -> float:
        """Seconds until the waiting lazy moves are due (0 or less: due now)."""
        if self._lazy_since is None:
            return LAZY_S
        return self._lazy_since + LAZY_S - time.monotonic()

    def _remember(self, job: _Commit, seqs: list[int]) -> None:
        """Keep the newest records at hand, as long as they follow on without a gap."""
        recent = self._recent
        for seq, record, (_, body) in zip(seqs, job.records, job.encoded, strict=True):
            if recent and recent[-1].seq != seq - 1:
                recent.clear()  # never expected: a gap would hide records from readers
            recent.append(Entry(seq, record, body))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- on the journal thread -------------------------------------------------------

    def _open_sync(self) -> int:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # The gateway is the journal's only user: other processes (the operator's reports)
        # ask the running gateway (gateway/journal_desk.py). Held exclusively before the
        # first access in WAL mode, SQLite keeps the log's index in the process's memory
        # instead of the mapped `-shm` file, whose pages writeback wrote to the SD card
        # again and again: about 40 % of the journal's bytes on a compound's day.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            if db.execute("PRAGMA page_count").fetchone()[0] == 0:
                db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only before the first write
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise JournalBusyError(
                    f"journal {self._path} is in use by another process (another gateway "
                    "on the same journal?)") from exc
            raise
        db.execute("PRAGMA synchronous=FULL")
        self._synchronous = True
        # Debian's SQLite zeroes every page a DELETE frees: each prune wrote all the pruned
        # records' pages again (and a checkpoint once more). FAST zeroes deleted bytes
        # only in pages written anyway; a freed page keeps its old bytes until reused.
        db.execute("PRAGMA secure_delete=FAST")
        # the WAL file shrinks back to WAL_HELD after a checkpoint, never below
        db.execute(f"PRAGMA journal_size_limit={WAL_HELD}")
        # a checkpoint writes each page changed since the last one once: the fuller the
        # log gets first (within the space held for it), the fewer times a page that
        # changes often (a cursor's, the newest records') reaches the database file
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_HELD * 3 // 4 // (page_size + 24)}")
        db.executescript(_SCHEMA)
        columns = {str(r[1]) for r in db.execute("PRAGMA table_info(records)")}
        self._inline_receipts = "receipt" in columns
        self._shared_table = db.execute(
            "SELECT 1 FROM sqlite_schema WHERE name='shared'").fetchone() is not None
        if not self._inline_receipts:
            db.executescript(_RECEIPTS_TABLE)
        self._hold_wal()
        self._db = db
        self._measure(db)
        self._receipts = ReceiptMemory()
        self._receipts.load(self._receipts_sync(0))
        newest = db.execute("SELECT max(seq) FROM records").fetchone()[0] or 0
        if db.execute("SELECT 1 FROM sqlite_schema WHERE name='sqlite_sequence'").fetchone():
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
            newest = max(newest, int(row[0]) if row else 0)
        return int(newest)

    def _hold_wal(self) -> None:
        """Allocate the write-ahead log's blocks up front.

        SQLite writes the log from its start again after each checkpoint, over blocks it
        already has: with them allocated, cursor moves, pruning and records that fit in
        the database's free pages need no new disk space, and go on when the disk is full.
        """
        try:
            fd = os.open(self._wal, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size < WAL_HELD:
                os.posix_fallocate(fd, 0, WAL_HELD)
        except OSError as exc:
            log.warning("cannot allocate the journal's write-ahead log (%d bytes): %s",
                        WAL_HELD, exc)
        finally:
            os.close(fd)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _commit_sync(self, group: list[_Commit], lazy: dict[str, int]) -> list[list[int]]:
        db = self._conn()
        # lazy cursor moves and lazy state alone: no fsync of their own (the next durable
        # commit syncs them)
        durable = _durable(group)
        if durable is not self._synchronous:
            # a statement (and a hand-over of the interpreter lock) only when it changes
            db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            self._synchronous = durable
        # The whole group in a few multi-row statements: every statement hands the
        # interpreter lock over and waits to get it back from a busy event loop, which
        # took longer than the fsync itself. Records get their sequence numbers here, the
        # next after the last committed (the journal's only writer); what the group sets
        # last for a key, a cursor or a receipt is what it sets.
        out: list[list[int]] = []
        inline = self._inline_receipts
        records: list[tuple[Any, ...]] = []
        seq = self._last_seq
        state: dict[str, bytes | None] = {}
        cursors: dict[str, int] = dict(lazy)
        receipts: dict[str, Receipt] = {}
        shared: list[tuple[Any, ...]] = []
        for job in group:
            shared += [_shared_values(row) for row in job.shared]
            seqs = []
            for cls, body in job.encoded:
                seq += 1
                records.append((seq, cls, body, None, None, None) if inline else
                               (seq, cls, body))
                seqs.append(seq)
            out.append(seqs)
            if job.cursor is not None:
                consumer, at = job.cursor
                if job.through_own and seqs and seqs[0] == at + 1:
                    at = seqs[-1]
                    job.cursor = (consumer, at)  # as moved: the loop reads it back
                cursors[consumer] = max(at, cursors.get(consumer, at))
            state.update(job.state)
            r = job.receipt
            if r is not None and inline and seqs:  # on the message's last record
                last = len(records) - len(seqs) + (job.message or len(seqs)) - 1
                records[last] = (*records[last][:3], r.key, r.digest, r.at)
            elif r is not None and not inline:
                receipts[r.key] = r
        db.execute("BEGIN IMMEDIATE")
        try:
            if shared and not self._shared_table:
                db.execute(_SHARED_TABLE)
            if inline:
                _insert_rows(db, "INSERT INTO records (seq, cls, body, receipt, digest, at) "
                             "VALUES ", records, "")
            else:
                _insert_rows(db, "INSERT INTO records (seq, cls, body) VALUES ", records, "")
            _insert_rows(db, "INSERT INTO state (key, value) VALUES ",
                         [(k, v) for k, v in state.items() if v is not None],
                         " ON CONFLICT(key) DO UPDATE SET value=excluded.value")
            gone = [k for k, v in state.items() if v is None]
            for first in range(0, len(gone), ROWS_PER_STATEMENT):
                chunk = gone[first:first + ROWS_PER_STATEMENT]
                db.execute(f"DELETE FROM state WHERE key IN ({','.join('?' * len(chunk))})",
                           chunk)
            _insert_rows(db, "INSERT INTO cursors (consumer, seq) VALUES ",
                         list(cursors.items()),
                         " ON CONFLICT(consumer) DO UPDATE SET seq=max(seq, excluded.seq)")
            _insert_rows(db, f"INSERT INTO shared ({SHARED_COLUMNS}) VALUES ", shared,
                         " ON CONFLICT(upstream, record_id) DO UPDATE SET "
                         "deliveries=deliveries+1, at=excluded.at")
            if receipts:
                _insert_rows(db, "INSERT OR REPLACE INTO receipts (key, digest, at) VALUES ",
                             [(r.key, r.digest, r.at) for r in receipts.values()], "")
            db.execute("COMMIT")
            self._shared_table = self._shared_table or bool(shared)
        except BaseException as exc:
            # SQLite has rolled back by itself after some errors (a full disk among them)
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and _disk_full(exc):
                self._measured_at = -math.inf
                raise JournalFullError("disk_full", str(exc)) from exc
            raise
        moved = [job.cursor for job in group if job.cursor is not None] + list(lazy.items())
        for consumer, seq in moved:
            if consumer in self._cursors:
                self._cursors[consumer] = max(self._cursors[consumer], seq)
        written = sum(len(s) for s in out)
        if durable or written:  # cursor moves alone do not change what the journal holds
            self._measure_if_due(db, sum(len(body) for job in group for _, body in job.encoded))
        if durable:
            self.commits += 1
            self._unsynced = False  # the fsync took what came before along
        else:
            self.lazy_commits += 1
            self._unsynced = self._unsynced or bool(written)
        self.records_written += written
        if written:
            self._last_seq = max(self._last_seq, max(s[-1] for s in out if s))
        # the callers are answered from here: before the committer task hears of it (the
        # loop runs what a thread hands it in order), one turn of the loop sooner
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._committed, group, out)
        return out

    def _measure_if_due(self, db: sqlite3.Connection, added: int) -> None:
        """Measure again when it is time, or when a limit is near; estimate in between.

        A measurement is four queries and a statvfs: after every commit, that was a good
        part of the journal thread's time under load.
        """
        self.used_bytes += added
        self.free_disk -= added
        q = self._quota
        near = (self.used_bytes >= (q.max_bytes - q.alarm_reserve) // 2
                or self.free_disk <= 2 * q.min_free_disk + MEASURE_MARGIN)
        if near or time.monotonic() - self._measured_at >= MEASURE_EVERY_S:
            self._measure(db)

    def _measure(self, db: sqlite3.Connection) -> None:
        self._measured_at = time.monotonic()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free_pages = db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        # the database as committed, WAL included; the WAL file itself is bounded apart
        self.used_bytes = (pages - free_pages) * page_size
        stat = os.statvfs(self._path.parent)
        self.free_disk = stat.f_bavail * stat.f_frsize
        if self._reserve.missing:
            self._reserve.restore(self.free_disk - self._quota.min_free_disk)

    def _cursor_sync(self, consumer: str) -> int:
        # every cursor move goes through this journal, on this thread: read each once
        cached = self._cursors.get(consumer)
        if cached is not None:
            return cached
        row = self._conn().execute(
            "SELECT seq FROM cursors WHERE consumer=?", (consumer,)
        ).fetchone()
        self._cursors[consumer] = seq = int(row[0]) if row else 0
        return seq

    def _read_sync(self, consumer: str, limit: int) -> Batch:
        return self._read_after_sync(self._cursor_sync(consumer), limit)

    def _read_after_sync(self, after: int, limit: int) -> Batch:
        rows = self._conn().execute(
            "SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        entries = []
        upto = after
        for seq, body in rows:
            upto = int(seq)
            try:
                entries.append(Entry(int(seq), decode(body), bytes(body)))
            except msgspec.MsgspecError as exc:  # written by a newer schema, or damaged
                log.error("journal record %d cannot be decoded (%s); skipped", seq, exc)
        return Batch(entries, upto)

    def _shared_sync(self, since_ms: int) -> list[SharedRow]:
        if not self._shared_table:
            return []
        rows = self._conn().execute(
            f"SELECT {SHARED_COLUMNS} FROM shared WHERE at >= ? ORDER BY at", (since_ms,)
        ).fetchall()
        return [SharedRow(*row) for row in rows]

    def _prune_shared_sync(self, before_ms: int) -> int:
        db = self._conn()
        if not self._shared_table:
            return 0
        # most turns find nothing to delete: no write (on a full disk, none that can fail)
        if db.execute("SELECT 1 FROM shared WHERE at < ? LIMIT 1", (before_ms,)).fetchone() \
                is None:
            return 0
        try:
            return int(db.execute("DELETE FROM shared WHERE at < ?", (before_ms,)).rowcount)
        except sqlite3.Error as exc:
            if not _disk_full(exc):
                raise
            log.warning("disk full: the audit's rows past their retention stay until there "
                        "is room to delete them")
            return 0
        finally:
            self._measured_at = -math.inf  # the next commit measures what is left

    def _state_sync(self, key: str) -> bytes | None:
        row = self._conn().execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def _states_sync(self, prefix: str) -> dict[str, bytes]:
        rows = self._conn().execute(
            "SELECT key, value FROM state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return {str(key): bytes(value) for key, value in rows}

    def _prune_sync(self, consumers: list[str], keep_from: int | None,
                    receipts_before: int | None, lazy: dict[str, int]) -> int:
        db = self._conn()
        gone = 0
        inline = self._inline_receipts
        try:
            if lazy:
                self._commit_sync([], lazy)
                lazy = {}
            if receipts_before is not None and not inline:
                db.execute("DELETE FROM receipts WHERE at < ?", (receipts_before,))
            if consumers:
                floor = min(self._cursor_sync(c) for c in consumers)
                if keep_from is not None:
                    floor = min(floor, keep_from - 1)
                if inline:
                    # the newest record stays (it keeps the sequence), and so do records
                    # whose receipt may still be needed
                    floor = min(floor, self._last_seq - 1)
                    gone = db.execute(
                        "DELETE FROM records WHERE seq <= ? AND (receipt IS NULL OR at < ?)",
                        (floor, -1 if receipts_before is None else receipts_before)).rowcount
                else:
                    gone = db.execute("DELETE FROM records WHERE seq <= ?",
                                      (floor,)).rowcount
        except (sqlite3.Error, JournalFullError) as exc:
            full = isinstance(exc, JournalFullError) or _disk_full(exc)
            if not full or not self._reserve.release():
                raise
            # deleting needs room in the write-ahead log too; the pages it frees take
            # new records without the database file growing
            log.error("disk full: the alarm reserve is given up to prune the journal")
            return self._prune_sync(consumers, keep_from, receipts_before, lazy)
        finally:
            self._measured_at = -math.inf  # the next commit measures what is left
        return gone

    def _forget_receipts_sync(self, prefix: str) -> None:
        if self._inline_receipts:
            self._conn().execute(
                "UPDATE records SET receipt=NULL, digest=NULL, at=NULL "
                "WHERE receipt IS NOT NULL AND substr(receipt, 1, ?) = ?", (len(prefix), prefix))
            return
        self._conn().execute("DELETE FROM receipts WHERE substr(key, 1, ?) = ?",
                             (len(prefix), prefix))

    def _receipts_sync(self, since: int) -> list[Receipt]:
        """Receipts at or after `since`, oldest first (a key given again: the newest last)."""
        if self._inline_receipts:
            query = ("SELECT receipt, digest, at FROM records "
                     "WHERE receipt IS NOT NULL AND at >= ? ORDER BY seq")
        else:
            query = "SELECT key, digest, at FROM receipts WHERE at >= ? ORDER BY at"
        rows = self._conn().execute(query, (since,)).fetchall()
        return [Receipt(str(key), bytes(digest), int(at)) for key, digest, at in rows]

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalClosedError(str(self._path))
        return self._db


def _durable(group: list[_Commit]) -> bool:
    return any(job.durable for job in group)


def _insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]],
                 tail: str) -> None:
    """`head` VALUES (...), (...) `tail`: up to ROWS_PER_STATEMENT rows per statement."""
    for first in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[first:first + ROWS_PER_STATEMENT]
        one = f"({','.join('?' * len(chunk[0]))})"
        db.execute(f"{head}{','.join([one] * len(chunk))}{tail}",
                   [value for row in chunk for value in row])


SHARED_COLUMNS = ("upstream, record_id, seq, rule, subject, kind, type, fields, personal, "
                  "basis, at, deliveries")


def _shared_values(row: SharedRow) -> tuple[Any, ...]:
    return (row.upstream, row.record_id, row.seq, row.rule, row.subject, row.kind, row.type,
            row.fields, row.personal, row.basis, row.at, row.deliveries)


def _disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
        "disk is full" in str(exc)


class ReserveFile:
    """Disk space held for alarms: a file of `size` bytes, given up when the disk is full.

    Space inside the journal's own limit is no help when something else fills the disk;
    this file's blocks are really allocated, so deleting it gives them back.
    Used on the journal thread only.
    """

    def __init__(self, path: Path, size: int) -> None:
        self._path = path
        self._size = size
        self.held = 0

    @property
    def missing(self) -> int:
        return self._size - self.held

    def restore(self, room: int) -> None:
        """Hold the reserve again, if `room` bytes of the disk may be taken for it."""
        existing = self._path.stat().st_size if self._path.exists() else 0
        if existing >= self._size or room < self._size - existing:
            self.held = min(existing, self._size)
            return
        try:
            with self._path.open("ab") as f:
                os.posix_fallocate(f.fileno(), 0, self._size)
                os.fsync(f.fileno())
        except OSError as exc:
            log.warning("cannot hold the alarm reserve %s (%d bytes): %s", self._path,
                        self._size, exc)
            with contextlib.suppress(OSError):
                self._path.unlink()
            self.held = 0
            return
        if self.held == 0 and self._size:
            log.info("alarm reserve held: %s (%d bytes)", self._path, self._size)
        self.held = self._size

    def release(self) -> bool:
        """Give the reserve's space back to the disk; False if there is none to give."""
        if not self._path.exists():
            self.held = 0
            return False
        size = self._path.stat().st_size
        self._path.unlink()
        self.held = 0
        return size > 0
