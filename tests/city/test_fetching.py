"""A pull consumer's fetch that outlives its own timeout is given up (nats-py's can, behind
an orphaned pull request; a real server cannot be made to show it on demand)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import hub.fetching
from hub.fetching import FetchStalledError, fetch_bounded


class Subscription:
    """A stand-in for a PullSubscription whose fetch does what it is told."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.cancelled = False

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        if self.behaviour == "answers":
            return [f"message {n}" for n in range(batch)]
        if self.behaviour == "times_out":
            raise TimeoutError
        try:
            await asyncio.Event().wait()  # never returns, whatever its timeout said
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return []


@pytest.fixture(autouse=True)
def short_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub.fetching, "STALL_S", 0.05)


async def test_a_fetch_that_answers_is_passed_on() -> None:
    sub: Any = Subscription("answers")
    messages: list[Any] = await fetch_bounded(sub, 2, 0.05)  # the stand-in's strings
    assert messages == ["message 0", "message 1"]


async def test_a_fetch_that_times_out_by_itself_raises_its_timeout() -> None:
    sub: Any = Subscription("times_out")
    with pytest.raises(TimeoutError):
        await fetch_bounded(sub, 2, 0.05)


async def test_a_fetch_that_outlives_its_timeout_is_given_up_and_cancelled() -> None:
    sub: Any = Subscription("hangs")
    async with asyncio.timeout(5):  # unbounded, the test would wait for ever
        with pytest.raises(FetchStalledError, match=r"a fetch of 5 did not return in 0\.1 s"):
            await fetch_bounded(sub, 5, 0.05)
    assert sub.cancelled
