"""The journal is held by the running gateway alone; operator tools read it through the
gateway's desk (a Unix socket), and from the file when no gateway runs."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.core.config import JournalConfig
from gateway.core.counters import Counters
from gateway.journal import Journal, JournalBusyError, SharedRow
from gateway.journal_desk import (
    JournalDesk,
    JournalUnreadableError,
    read_shared,
    read_states,
    socket_path,
)
from tests.helpers import eventually


def row(record_id: str, at: int, subject: str = "elder-1") -> SharedRow:
    return SharedRow("district", record_id, 0, "sos", subject, "elder_button", "firing",
                     "id", "", "", at)


async def fill(journal: Journal) -> None:
    await journal.commit(state={"alerts/b": b'{"n":2}', "alerts/a": b'{"n":1}',
                                "other/x": b"x"},
                         shared=[row("late", 2_000), row("early", 1_000, "elder-2")])


@asynccontextmanager
async def desk(config: JournalConfig) -> AsyncIterator[JournalDesk]:
    async with Journal(config.path) as journal:
        await fill(journal)
        served = JournalDesk(journal, socket_path(config), Counters())
        task = asyncio.create_task(served.run())
        try:
            await eventually(served.ready.is_set, what="the desk open")
            yield served
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_a_running_gateway_answers_what_its_locked_file_does_not(tmp_path: Path
                                                                      ) -> None:
    config = JournalConfig(path=tmp_path / "journal.db")
    async with desk(config) as served:
        # the database itself is held: another process cannot read it
        db = sqlite3.connect(f"{config.path.as_uri()}?mode=ro", uri=True, timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            db.execute("SELECT count(*) FROM state").fetchone()
        db.close()
        # the tools block: they run beside the loop that answers them
        states = await asyncio.to_thread(read_states, config, "alerts/")
        shared = await asyncio.to_thread(read_shared, config, 1_500)
        assert states == [b'{"n":1}', b'{"n":2}']
        assert [r.record_id for r in shared] == ["late"]
        assert served.counters.get("journal_reads", result="answered") == 2
    # stopped: the socket is gone and the same reads come from the file
    assert not socket_path(config).exists()
    assert read_states(config, "alerts/") == [b'{"n":1}', b'{"n":2}']
    assert [r.record_id for r in read_shared(config, 0)] == ["early", "late"]


async def test_a_long_directory_path_still_reaches_the_desk(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    config = JournalConfig(path=deep / "journal.db")
    assert len(str(socket_path(config))) > 108  # beyond what a socket address holds
    async with desk(config):
        states = await asyncio.to_thread(read_states, config, "other/")
    assert states == [b"x"]


async def test_a_second_gateway_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        await fill(journal)
        with pytest.raises(JournalBusyError, match=f"journal {path} is in use by another"):
            await Journal(path).open()
        await journal.commit(state={"still": b"1"})  # the first goes on
    async with Journal(path) as journal:
        assert await journal.read_state("still") == b"1"


async def test_a_request_that_is_no_read_is_refused_and_the_desk_goes_on(tmp_path: Path
                                                                         ) -> None:
    config = JournalConfig(path=tmp_path / "journal.db")
    async with desk(config) as served:
        reader, writer = await asyncio.open_unix_connection(str(socket_path(config)))
        writer.write(b'{"type": "drop", "table": "records"}\n')
        answer = await reader.read()
        writer.close()
        assert b"not a journal read" in answer
        assert served.counters.get("journal_reads", result="refused") == 1
        assert await asyncio.to_thread(read_states, config, "other/") == [b"x"]


async def test_a_socket_left_by_a_killed_gateway_is_read_past(tmp_path: Path) -> None:
    config = JournalConfig(path=tmp_path / "journal.db")
    async with Journal(config.path) as journal:
        await fill(journal)
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(socket_path(config)))  # bound, never listening: nobody answers
    left.close()
    assert read_states(config, "other/") == [b"x"]
    # and a new gateway takes the place over
    async with desk(config):
        assert await asyncio.to_thread(read_states, config, "other/") == [b"x"]


async def test_a_held_journal_with_no_desk_is_a_clear_error(tmp_path: Path) -> None:
    config = JournalConfig(path=tmp_path / "journal.db")
    async with Journal(config.path) as journal:
        await fill(journal)
        with pytest.raises(JournalUnreadableError,
                           match="held by a running gateway, and none answers at"):
            await asyncio.to_thread(read_states, config, "other/")


def test_no_journal_reads_as_empty(tmp_path: Path) -> None:
    config = JournalConfig(path=tmp_path / "none.db")
    assert read_states(config, "") == []
    assert read_shared(config, 0) == []
    assert not config.path.exists()
