"""The journal thread gets the interpreter lock sooner while someone waits for a commit."""

from __future__ import annotations

import asyncio
import ctypes
import sys
from pathlib import Path

import pytest

from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.journal import Journal, _Commit
from gateway.lock_handover import (
    COMMIT_SWITCH_INTERVAL_S,
    SWITCH_INTERVAL_S,
    TIMER_SLACK_NS,
    handed_over_sooner,
)

T0 = 1_767_225_600_000
_PR_GET_TIMERSLACK = 30


class _Watched(Journal):
    """Notes the switch interval each commit ran with, on the journal thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.intervals: list[float] = []

    def _commit_sync(self, group: list[_Commit], lazy: dict[str, int]) -> list[list[int]]:
        self.intervals.append(sys.getswitchinterval())
        return super()._commit_sync(group, lazy)


async def test_an_alarms_commit_runs_with_the_short_interval_and_a_door_events_does_not(
    tmp_path: Path,
) -> None:
    journal = _Watched(tmp_path / "journal.db")
    async with journal:
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        await journal.append(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press", T0))
        await journal.append(make_event(DeviceKind.ACCESS, "door-1", "door_opened", T0 + 1))
        # an alarm is durable, a door event is not (the next durable commit syncs it)
        assert journal.intervals == [pytest.approx(COMMIT_SWITCH_INTERVAL_S),
                                     pytest.approx(SWITCH_INTERVAL_S)]
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)


async def test_commits_of_two_journals_at_once_give_the_interval_back_once_both_are_done(
    tmp_path: Path,
) -> None:
    async with Journal(tmp_path / "a.db") as a, Journal(tmp_path / "b.db") as b:
        await asyncio.gather(*(
            journal.append(make_event(DeviceKind.ELDER_BUTTON, f"elder-{n}", "press", T0 + n))
            for n in range(20) for journal in (a, b)))
        # the callers are answered from the journal thread's hand-over, before the
        # committer ends its turn and gives the interval back: a door event (no fsync, no
        # short interval) is committed only after that turn, so once both journals took
        # one, both are done with their alarms
        await asyncio.gather(*(
            journal.append(make_event(DeviceKind.ACCESS, "door-1", "door_opened", T0 + 99))
            for journal in (a, b)))
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)


def test_overlapping_durable_commits_restore_what_was_there_before() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.002)
        first = handed_over_sooner(True)
        second = handed_over_sooner(True)
        first.__enter__()
        assert sys.getswitchinterval() == pytest.approx(COMMIT_SWITCH_INTERVAL_S)
        second.__enter__()
        first.__exit__(None, None, None)  # the first ends while the second still runs
        assert sys.getswitchinterval() == pytest.approx(COMMIT_SWITCH_INTERVAL_S)
        second.__exit__(None, None, None)
        assert sys.getswitchinterval() == pytest.approx(0.002)
        with handed_over_sooner(False):
            assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(2) is Linux's")
async def test_the_journal_threads_timed_waits_end_within_a_microsecond(tmp_path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    async with Journal(tmp_path / "journal.db") as journal:
        slack = await journal._run(libc.prctl, _PR_GET_TIMERSLACK, 0, 0, 0, 0)
    assert slack == TIMER_SLACK_NS
    assert libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0) != TIMER_SLACK_NS  # this thread's
