"""An alarm's right of way: claimed at the intake, ended by the alarm's publication."""

from __future__ import annotations

import asyncio

from gateway.core.clock import ManualClock
from gateway.core.right_of_way import MAX_CLAIM_S, RightOfWay


def _way(clock: ManualClock) -> RightOfWay:
    return RightOfWay(call_later=clock.call_later)


async def test_a_claim_holds_until_the_records_it_ends_at_are_published() -> None:
    way = _way(ManualClock())
    claim = way.claim()
    assert way.held
    way.published(10)  # not journalled yet: its records are not known
    assert way.held
    way.journalled(claim, 12)
    way.published(11)  # before the alarm's last record
    assert way.held
    cleared = way.cleared()
    assert not cleared.done()
    way.published(12)
    assert not way.held
    await asyncio.wait_for(cleared, 1)
    assert (way.claims, way.expired) == (1, 0)


async def test_the_way_clears_once_every_claim_ended() -> None:
    way = _way(ManualClock())
    first, second = way.claim(), way.claim()
    way.journalled(first, 5)
    way.journalled(second, 9)
    way.published(7)
    assert way.held  # the second alarm is still on its way
    calls: list[str] = []
    way.when_clear(lambda: calls.append("clear"))
    way.end(second)  # e.g. not journalled after all
    assert not way.held
    assert calls == ["clear"]
    way.end(second)  # ending twice changes nothing
    assert calls == ["clear"]


async def test_a_claim_ends_by_itself_after_max_claim_s() -> None:
    """With the broker down, the alarm is not published: readings do not wait for it."""
    clock = ManualClock()
    way = _way(clock)
    claim = way.claim()
    way.journalled(claim, 3)
    cleared = way.cleared()
    clock.advance(MAX_CLAIM_S / 2)
    assert way.held
    clock.advance(MAX_CLAIM_S / 2)
    assert not way.held
    assert cleared.done()
    assert (way.claims, way.expired) == (1, 1)
    way.published(3)  # published later: the claim is over already
    assert way.expired == 1


async def test_an_ended_claim_cancels_its_timer() -> None:
    clock = ManualClock()
    way = _way(clock)
    claim = way.claim()
    assert clock.deadlines() == [clock.monotonic() + MAX_CLAIM_S]
    way.journalled(claim, 1)
    way.published(1)
    assert clock.deadlines() == []
    clock.advance(MAX_CLAIM_S)
    assert way.expired == 0


async def test_when_clear_calls_at_once_when_no_claim_is_held() -> None:
    way = _way(ManualClock())
    calls: list[int] = []
    way.when_clear(lambda: calls.append(1))
    assert calls == [1]
    assert way.cleared().done()


async def test_a_claim_whose_records_were_published_before_it_heard_of_them_ends() -> None:
    """The MQTT sink may publish the alarm's commit in the turn before the intake hears
    that it is journalled."""
    way = _way(ManualClock())
    claim = way.claim()
    way.published(7)
    assert way.held
    way.journalled(claim, 7)
    assert not way.held
    assert way.expired == 0
