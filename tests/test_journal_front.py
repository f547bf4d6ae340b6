"""The front of the journal's line: the next commit held for one caller."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.kinds import make_event
from gateway.core.model import DeviceEvent, DeviceKind
from gateway.journal import Journal, JournalClosedError

T0 = 1_767_225_600_000


def _event(device: str, kind: DeviceKind = DeviceKind.ACCESS, what: str = "door_opened"
           ) -> DeviceEvent:
    return make_event(kind, device, what, T0)


async def test_commits_wait_while_the_front_is_held_and_the_front_goes_first(
        tmp_path: Path) -> None:
    async with Journal(tmp_path / "journal.db") as journal:
        await journal.commit([_event("door-0")])
        async with journal.front_of_line() as front:
            door = asyncio.ensure_future(journal.commit([_event("door-1")]))
            await asyncio.sleep(0.05)
            assert not door.done()
            assert journal.last_seq == 1  # nothing committed while held
            alarm = _event("elder-1", DeviceKind.ELDER_BUTTON, "press")
            first = front.commit([alarm], message=1, cursor=("rules", 1), state={"k": b"v"})
            with pytest.raises(RuntimeError):
                front.commit([alarm], message=1, cursor=("rules", 1), state={})
        assert await first == [2]
        assert await door == [3]
        # the cursor moved past the front's own record: it followed right after it
        assert await journal.cursor("rules") == 2
        assert await journal.read_state("k") == b"v"


async def test_the_cursor_stays_where_it_was_put_when_records_came_between(
        tmp_path: Path) -> None:
    async with Journal(tmp_path / "journal.db") as journal:
        await journal.commit([_event("door-0")])
        async with journal.front_of_line() as front:
            done = front.commit([_event("elder-1", DeviceKind.ELDER_BUTTON, "press")],
                                message=1, cursor=("rules", 0), state={})
        assert await done == [2]
        assert await journal.cursor("rules") == 0  # record 1 was not read by its owner


async def test_what_the_journal_holds_does_not_change_while_the_front_is_held(
        tmp_path: Path) -> None:
    async with Journal(tmp_path / "journal.db") as journal:
        under_way = [asyncio.ensure_future(journal.commit([_event(f"door-{i}")]))
                     for i in range(20)]
        await asyncio.sleep(0)
        async with journal.front_of_line():
            held = journal.last_seq
            assert len((await journal.read_after(0, 100)).entries) == held
            await asyncio.sleep(0.05)
            assert journal.last_seq == held
        await asyncio.gather(*under_way)
        assert journal.last_seq == 20


async def test_no_front_once_the_journal_is_closed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    async with journal:
        pass
    with pytest.raises(JournalClosedError):
        async with journal.front_of_line():
            pass
    with pytest.raises(JournalClosedError):
        journal.check_room([_event("door-1")])

