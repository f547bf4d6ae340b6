"""The journal: durable appends, grouped commits, cursors, state, and reopening."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway import journal as journal_module
from gateway.core.model import (
    AckCommand,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    decode,
    encode,
    new_id,
)
from gateway.journal import PAGE_SIZE, Journal, Receipt
from tests.helpers import eventually

T0 = 1_700_000_000_000


def _event(n: int, cls: DeliveryClass = DeliveryClass.ALARM) -> DeviceEvent:
    ts = 1_700_000_000_000 + n
    return DeviceEvent(id=new_id(ts), ts=ts, kind=DeviceKind.SMOKE,
                       device=f"smoke-{n % 3}", type="alarm", cls=cls, fields={"n": n})


async def test_appends_are_read_back_in_order_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    written = [_event(n) for n in range(5)]
    async with Journal(path) as journal:
        seqs = [await journal.append(e) for e in written]
    assert seqs == [1, 2, 3, 4, 5]
    async with Journal(path) as journal:
        assert journal.last_seq == 5
        batch = await journal.read("sink", limit=10)
        assert [e.seq for e in batch.entries] == seqs
        assert [e.record for e in batch.entries] == written


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        seqs = await asyncio.gather(*(journal.append(_event(n)) for n in range(200)))
        assert sorted(seqs) == list(range(1, 201))
        assert journal.records_written == 200
        assert journal.commits < 20  # grouped: far fewer fsyncs than records


async def test_each_consumer_has_its_own_cursor(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        for n in range(4):
            await journal.append(_event(n))
        await journal.move_cursor("mqtt", 3)
        assert [e.seq for e in (await journal.read("mqtt")).entries] == [4]
        assert len((await journal.read("store")).entries) == 4
        assert await journal.backlog("mqtt") == 1
        await journal.move_cursor("mqtt", 2)  # never backwards
        assert await journal.cursor("mqtt") == 3


async def test_records_cursor_and_state_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.append(_event(0))
        await journal.commit([_event(1)], cursor=("rules", 1), state={"k": b"v1"})
    async with Journal(path) as journal:
        assert await journal.cursor("rules") == 1
        assert await journal.read_state("k") == b"v1"
        assert journal.last_seq == 2
        await journal.commit(state={"k": None})
        assert await journal.read_state("k") is None


async def test_listeners_wake_on_new_records(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        woken = journal.listen()
        await journal.move_cursor("x", 0)
        assert not woken.is_set()  # a cursor move appends nothing
        await journal.append(_event(1))
        assert woken.is_set()


async def test_prune_keeps_what_a_consumer_still_needs(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        for n in range(6):
            await journal.append(_event(n))
        await journal.move_cursor("mqtt", 5)
        await journal.move_cursor("store", 2)
        assert await journal.prune(["mqtt", "store"]) == 2
        assert [e.seq for e in (await journal.read("store")).entries] == [3, 4, 5, 6]


async def test_undecodable_record_is_skipped_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.append(_event(0))
    db = sqlite3.connect(path)
    with db:  # commits, and the connection is closed after
        db.execute("INSERT INTO records (cls, body) VALUES ('alarm', x'7b6e6f')")
    db.close()
    async with Journal(path) as journal:
        await journal.append(_event(2))
        batch = await journal.read("c")
        assert [e.seq for e in batch.entries] == [1, 3]
        assert batch.upto == 3


async def test_entries_carry_the_bytes_as_journalled(tmp_path: Path) -> None:
    # the MQTT sink publishes these bytes: a record is encoded once, on its way in
    path = tmp_path / "j.db"
    written = [_event(n) for n in range(3)]
    async with Journal(path) as journal:
        await journal.commit(written)
        fresh = (await journal.read_after(0)).entries  # from the records kept in memory
        assert [e.body for e in fresh] == [encode(e) for e in written]
    async with Journal(path) as journal:
        stored = (await journal.read_after(0)).entries  # from the database
        assert [e.body for e in stored] == [encode(e) for e in written]
        assert [decode(e.body) for e in stored] == written


async def test_a_durable_commit_sets_no_pragma_when_the_mode_is_unchanged(
        tmp_path: Path) -> None:
    statements: list[str] = []
    async with Journal(tmp_path / "j.db") as journal:
        assert journal._db is not None
        journal._db.set_trace_callback(statements.append)
        for n in range(5):
            await journal.append(_event(n))
        assert not [s for s in statements if "synchronous" in s]
        await journal.commit(state={"k": b"lazy"}, durable=False)  # no fsync of its own
        await journal.append(_event(5))  # and the next one has it again
        assert [s for s in statements if "synchronous" in s] == [
            "PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"]
        assert await journal.read_state("k") == b"lazy"


async def test_a_group_of_commits_is_a_few_statements_whatever_its_size(
        tmp_path: Path) -> None:
    # every statement waits for the interpreter lock from a busy event loop: a grouped
    # commit of many messages must not cost one statement per record and per row
    path = tmp_path / "j.db"
    statements: list[str] = []
    async with Journal(path) as journal:
        await journal.append(_event(0))
        assert journal._db is not None
        journal._db.set_trace_callback(statements.append)
        seqs = await asyncio.gather(*(
            journal.commit([_event(n), _event(n + 1000)], cursor=("rules", n),
                           state={f"k{n}": b"v", "gone": None, "last": b"%d" % n},
                           receipt=Receipt(f"mqtt:{n % 3}", b"d%d" % n, n))
            for n in range(1, 301)))
        assert [s for r in seqs for s in r] == list(range(2, 602))  # in the callers' order
        assert len(statements) <= 4 * 12  # BEGIN, 600 records, 302 rows, cursor, COMMIT
        assert journal.commits <= 4
        await journal.commit(state={"k1": None})
    async with Journal(path) as journal:
        assert journal.last_seq == 601
        assert await journal.cursor("rules") == 300
        assert await journal.read_state("k1") is None
        assert await journal.read_state("k300") == b"v"
        assert await journal.read_state("last") == b"300"
        assert journal.receipt("mqtt:0") == Receipt("mqtt:0", b"d300", 300)
        batch = await journal.read_after(0, limit=1000)
        assert [e.seq for e in batch.entries] == list(range(1, 602))
        assert [e.record.fields["n"] for e in batch.entries[1:5]  # type: ignore[union-attr]
                ] == [1, 1001, 2, 1002]
        assert await journal.append(_event(9)) == 602


async def test_a_caller_resumes_in_the_loop_turn_after_its_commit(tmp_path: Path) -> None:
    # under load every turn of the event loop is milliseconds: an alert waited three
    # more of them between its fsync and its caller (the committer task, then a shield).
    # Counted from the thread's answer as the loop runs it: read on the journal thread,
    # the count raced the answer (the thread can lose the interpreter lock in between)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async with Journal(tmp_path / "j.db") as journal:
        answered: list[int] = []
        committed = journal._committed

        def answering(group: Any, seqs: Any) -> None:
            answered.append(turns)  # on the loop, as it runs the thread's answer
            committed(group, seqs)

        journal._committed = answering  # type: ignore[method-assign]
        ticker = asyncio.create_task(count_turns())
        waited = []
        for n in range(20):
            await journal.append(_event(n))
            waited.append(turns - answered[-1])
        ticker.cancel()
    # the ticker runs once in the answer's turn and once in the next, where the caller
    # resumes: two at most, whatever the load
    assert len(answered) == 20
    assert max(waited) <= 2, waited


def _layout(path: Path) -> tuple[int, dict[str, bool]]:
    """The page size, and for each table whether it is kept without a rowid."""
    db = sqlite3.connect(path)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type='table' AND name IN "
            "('cursors', 'state', 'receipts')")]
        indexes = {r[0] for r in db.execute(
            "SELECT tbl_name FROM sqlite_schema WHERE type='index'")}
        return page_size, {t: t not in indexes for t in tables}
    finally:
        db.close()


async def test_a_new_journal_writes_small_pages_and_keyed_tables_in_one_tree(
        tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.commit([_event(0)], cursor=("rules", 1), state={"k": b"v"})
    page_size, one_tree = _layout(path)
    assert page_size == PAGE_SIZE == 1024
    # receipts ride on their records, and no sqlite_sequence row is rewritten per commit
    assert one_tree == {"cursors": True, "state": True}
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT name FROM sqlite_schema WHERE name='sqlite_sequence'"
                          ).fetchall() == []
    finally:
        db.close()


async def test_a_journal_made_with_large_pages_and_indexed_tables_is_used_as_it_is(
        tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = _event(0), _event(1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript("""
        CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, cls TEXT NOT NULL,
                              body BLOB NOT NULL);
        CREATE TABLE cursors (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
        CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE receipts (key TEXT PRIMARY KEY, digest BLOB NOT NULL,
                               at INTEGER NOT NULL);
    """)
    db.execute("INSERT INTO records (cls, body) VALUES (?, ?)",
               (DeliveryClass.ALARM.value, encode(first)))
    db.execute("INSERT INTO cursors VALUES ('rules', 1)")
    db.commit()
    db.close()
    async with Journal(path) as journal:
        assert journal.last_seq == 1
        await journal.commit([second], cursor=("rules", 2), state={"k": b"v"})
    async with Journal(path) as journal:
        assert journal.last_seq == 2
        assert await journal.cursor("rules") == 2
        assert await journal.read_state("k") == b"v"
        assert [e.record for e in (await journal.read("mqtt")).entries] == [
            first, second]
    assert _layout(path) == (4096, {"cursors": False, "state": False, "receipts": False})


async def test_a_journal_made_with_a_receipts_table_keeps_using_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, cls TEXT NOT NULL,
                              body BLOB NOT NULL);
        CREATE TABLE receipts (key TEXT PRIMARY KEY, digest BLOB NOT NULL,
                               at INTEGER NOT NULL) WITHOUT ROWID;
    """)
    db.execute("INSERT INTO receipts VALUES ('mqtt:1', x'01', 5)")
    db.commit()
    db.close()
    async with Journal(path) as journal:
        assert journal.receipt("mqtt:1") == Receipt("mqtt:1", b"\x01", 5)
        await journal.commit([_event(0)], receipt=Receipt("mqtt:2", b"\x02", 6))
        await journal.move_cursor("c", 1)
        assert await journal.prune(["c"], receipts_before=6) == 1
    async with Journal(path) as journal:
        assert journal.last_seq == 1
        assert journal.receipt("mqtt:1") is None
        assert journal.receipt("mqtt:2") == Receipt("mqtt:2", b"\x02", 6)


async def test_receipts_ride_on_their_records_and_outlive_them_for_the_window(
        tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.commit([_event(0)], receipt=Receipt("mqtt:1", b"a", 100))
        await journal.commit([_event(1), _event(2)], receipt=Receipt("mqtt:2", b"b", 200))
        await journal.commit([_event(3)])
        await journal.commit([_event(4)], receipt=Receipt("mqtt:1", b"c", 300))  # id reused
        await journal.commit([_event(5)])
        await journal.move_cursor("c", 6)
        # every record passed; those carrying a receipt newer than 150 stay for it
        assert await journal.prune(["c"], receipts_before=150) == 3
    async with Journal(path) as journal:
        assert journal.receipt("mqtt:1") == Receipt("mqtt:1", b"c", 300)
        assert journal.receipt("mqtt:2") == Receipt("mqtt:2", b"b", 200)
        await journal.forget_receipts("mqtt:")
        assert journal.receipt("mqtt:1") is None
    async with Journal(path) as journal:
        assert journal.receipt("mqtt:1") is journal.receipt("mqtt:2") is None
        assert await journal.prune(["c"], receipts_before=150) == 2


async def test_sequence_numbers_are_never_given_twice_when_everything_was_pruned(
        tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for n in range(3):
            await journal.append(_event(n))
        await journal.move_cursor("c", 3)
        assert await journal.prune(["c"]) == 2  # the newest stays: it holds the number
    async with Journal(path) as journal:
        assert journal.last_seq == 3
        assert await journal.append(_event(3)) == 4
        assert [e.seq for e in (await journal.read("c")).entries] == [4]


async def test_a_door_opened_writes_the_page_of_its_record_alone(tmp_path: Path) -> None:
    """An event's commit without an fsync writes its record's page: no cursor page for the
    sinks' lazy moves, no receipts table, no sqlite_sequence row."""
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.commit([_event(0, DeliveryClass.EVENT)],
                             receipt=Receipt("mqtt:0", b"d", T0))
        start = _wal_frames(path)
        for n in range(1, 21):
            await journal.commit([_event(n, DeliveryClass.EVENT)],
                                 receipt=Receipt(f"mqtt:{n}", b"d", T0 + n))
            await journal.move_cursor("mqtt", n, durable=False)
        frames = _wal_frames(path) - start
        assert journal.lazy_commits == 21
        assert await journal.cursor("mqtt") == 20  # waiting in memory
    # and a new leaf every few records, with the page that points to it and the header
    # (four pages a record before: the cursors', the receipts', sqlite_sequence's)
    assert frames <= 20 * 1.6, frames
    async with Journal(path) as journal:  # the close wrote the waiting moves
        assert await journal.cursor("mqtt") == 20


async def test_lazy_cursor_moves_of_several_consumers_share_one_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "LAZY_S", 0.2)
    async with Journal(tmp_path / "j.db") as journal:
        for n in range(3):
            await journal.append(_event(n))
        durable = journal.commits
        for consumer in ("mqtt", "store", "notify"):
            await journal.move_cursor(consumer, 3, durable=False)
            await asyncio.sleep(0.01)  # the sinks move one after the other
        await eventually(lambda: journal.lazy_commits > 0, what="the lazy moves written")
        await asyncio.sleep(0.5)  # longer than LAZY_S: a move left behind would be written
        assert journal.lazy_commits == 1
        assert journal.commits == durable
    async with Journal(tmp_path / "j.db") as journal:
        assert [await journal.cursor(c) for c in ("mqtt", "store", "notify")] == [3, 3, 3]


async def test_a_durable_commit_carries_the_waiting_lazy_moves(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        await journal.append(_event(0))
        await journal.move_cursor("mqtt", 1, durable=False)
        await journal.append(_event(1))  # does not wait for LAZY_S, and takes the move along
        assert journal.lazy_commits == 0
    async with Journal(tmp_path / "j.db") as journal:
        assert await journal.cursor("mqtt") == 1


async def test_pruning_takes_the_waiting_lazy_moves_along(tmp_path: Path) -> None:
    """Records every sink passed are pruned at the next pruning, not once the sinks' lazy
    cursor moves were written (up to LAZY_S later: after a burst, a full disk waited)."""
    async with Journal(tmp_path / "j.db") as journal:
        for n in range(5):
            await journal.append(_event(n))
        durable = journal.commits
        for consumer in ("mqtt", "store"):
            await journal.move_cursor(consumer, 4, durable=False)
        assert await journal.prune(["mqtt", "store"]) == 4  # the newest record stays
        assert journal.commits == durable  # the moves cost no fsync of their own
    async with Journal(tmp_path / "j.db") as journal:  # and the moves are on disk
        assert [await journal.cursor(c) for c in ("mqtt", "store")] == [4, 4]


async def test_an_event_that_is_not_an_alarm_costs_no_fsync_and_is_synced_soon_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "EVENT_SYNC_S", 0.1)
    async with Journal(tmp_path / "j.db") as journal:
        await journal.append(_event(0, DeliveryClass.EVENT))
        assert (journal.commits, journal.lazy_commits) == (0, 1)
        await eventually(lambda: journal.syncs == 1, what="the log synced")
        # alarms, alerts' kin and acknowledgements keep their own fsync
        await journal.append(_event(1))
        await journal.append(AckCommand(id=new_id(T0), ts=T0, rule="r", device="d", by="x"))
        assert (journal.commits, journal.lazy_commits) == (2, 1)
    async with Journal(tmp_path / "j.db") as journal:
        assert journal.last_seq == 3


async def test_an_alarm_syncs_the_events_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "EVENT_SYNC_S", 0.2)
    async with Journal(tmp_path / "j.db") as journal:
        await journal.append(_event(0, DeliveryClass.EVENT))
        await journal.append(_event(1))
        await asyncio.sleep(0.4)  # past EVENT_SYNC_S: nothing left to sync of its own
        assert journal.syncs == 0
        assert journal.commits == 1


async def test_a_clean_close_syncs_what_waits(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db") as journal:
        await journal.append(_event(0, DeliveryClass.EVENT))
        assert journal.syncs == 0
    assert journal.syncs == 1


def _wal_frames(path: Path) -> int:
    """Frames in the journal's write-ahead log since it last started over."""
    data = path.with_name(path.name + "-wal").read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    frames, offset = 0, 32
    while offset + 24 <= len(data) and data[offset + 8:offset + 16] == salts:
        frames += 1
        offset += 24 + page_size
    return frames


async def test_pruning_does_not_write_the_pages_it_frees(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.move_cursor("c", 0)
        start = _wal_frames(path)
        await journal.commit([_event(n) for n in range(400)])
        filled = _wal_frames(path) - start
        await journal.move_cursor("c", journal.last_seq)
        before = _wal_frames(path)
        assert await journal.prune(["c"]) == 399  # the newest stays
        written = _wal_frames(path) - before
    # freeing the records' pages writes the pages the delete changed (each leaf once, as it
    # empties) and the free list's, not every freed page once more, zeroed
    print(f"records written in {filled} frames, pruned in {written}")
    assert 0 < written < filled * 0.7

