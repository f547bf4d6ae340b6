"""The audit's table in the journal's database: made with its first row, rows counted once
per record and upstream, deleted after their retention."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.journal import Journal, SharedRow


def tables(path: Path) -> set[str]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_schema")}
    finally:
        db.close()


def row(record_id: str, at: int) -> SharedRow:
    return SharedRow("city", record_id, 1, "fire", "building-3", "smoke", "firing", "id",
                     "", "", at)


async def test_the_table_comes_with_the_first_row_and_counts_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        assert await journal.read_shared(0) == []
        assert await journal.prune_shared(10**15) == 0
        await journal.commit(cursor=("upstream:city", 1), durable=False)
    assert "shared" not in tables(path)  # a gateway that shares nothing: the journal it had
    async with Journal(path) as journal:
        await journal.commit(cursor=("upstream:city", 1), durable=False,
                             shared=[row("r1", 1000), row("r2", 2000)])
        # the same record confirmed again (a batch sent again after a crash): one row
        await journal.commit(cursor=("upstream:city", 1), durable=False,
                             shared=[row("r1", 3000)])
        assert [(r.record_id, r.deliveries, r.at) for r in await journal.read_shared(0)] == [
            ("r2", 1, 2000), ("r1", 2, 3000)]
        assert await journal.prune_shared(2500) == 1
    async with Journal(path) as journal:  # kept across a restart
        assert [r.record_id for r in await journal.read_shared(0)] == ["r1"]
