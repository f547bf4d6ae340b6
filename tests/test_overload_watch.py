"""When the gateway counts as overloaded, how its memory is held under the ceiling, and how
a broker session reads near the ceiling: the decisions on injected time and samples."""

from __future__ import annotations

import asyncio

from gateway.console.catalogue import CATALOGUES
from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.inbound import Inbound
from gateway.core.kinds import MODELS
from gateway.core.model import DEVICE_KINDS, DeviceKind
from gateway.link import dispatch
from gateway.link.dispatch import LOOK_EVERY, Dispatch
from gateway.link.routes import Routes
from gateway.memory_ceiling import HIGH, LOW, MemoryCeiling, intake_bytes
from gateway.overload import OverloadWatch, Turn
from rules.loader import PACKS, load_pack

MIB = 2**20


def lanes(**ages: float) -> dict[str, dict[str, float]]:
    return {lane: {"messages": 7.0, "bytes": 0.0, "oldest_s": age} for lane, age in ages.items()}


def _watched(watch: OverloadWatch, start: float, end: float, **ages: float) -> list[Turn]:
    """Samples every 0.5 s from `start` up to `end` (excluded), the lanes at `ages`."""
    turns = []
    t = start
    while t < end:
        turn = watch.observe(t, lanes(**ages))
        if turn is not None:
            turns.append(turn)
        t += 0.5
    return turns


def test_a_lane_behind_for_the_hold_time_raises_it_once_and_all_caught_up_clears_it() -> None:
    watch = OverloadWatch(after_s=5, hold_s=10, clear_s=1)
    assert _watched(watch, 0, 10, bulk=6, devices=0) == []  # above, the hold runs
    assert watch.observe(10, lanes(bulk=16, devices=0)) == Turn(True, "bulk", 16, 7)
    assert _watched(watch, 10.5, 12, bulk=17, devices=0) == []  # raised once
    assert watch.observe(12, lanes(bulk=0.5, devices=3)) is None  # another lane behind
    assert watch.observe(12.5, lanes(bulk=0.5, devices=0.2)) == Turn(False, "bulk", 0.5, 7)
    assert not watch.overloaded
    assert watch.observe(13, lanes(bulk=0)) is None


def test_a_burst_shorter_than_the_hold_raises_nothing() -> None:
    watch = OverloadWatch(after_s=5, hold_s=10, clear_s=1)
    assert _watched(watch, 0, 9, readings=6) == []
    assert _watched(watch, 9, 10, readings=4) == []  # below: the hold ends
    assert _watched(watch, 10, 19.5, readings=8) == []
    assert not watch.overloaded
    assert len(_watched(watch, 19.5, 21, readings=8)) == 1  # ten seconds from 10


def test_an_alert_left_firing_by_the_previous_run_is_cleared_once_caught_up() -> None:
    watch = OverloadWatch(after_s=5, hold_s=10, clear_s=1, overloaded=True)
    assert watch.observe(0, lanes(bulk=2)) is None
    turn = watch.observe(1, lanes(bulk=0))
    assert turn is not None
    assert not turn.overloaded


def test_the_memory_ceiling_tightens_reading_above_high_and_relaxes_below_low() -> None:
    resident = [100 * MIB]
    ceiling = MemoryCeiling(200 * MIB, ManualClock(), Counters(), read=lambda: resident[0])
    told: list[bool] = []
    ceiling.listeners.append(told.append)
    assert not ceiling.check()
    resident[0] = int(200 * MIB * HIGH)
    assert ceiling.check()
    resident[0] = int(200 * MIB * LOW) + MIB  # between the marks: stays tight
    assert ceiling.check()
    resident[0] = int(200 * MIB * LOW) - MIB
    assert not ceiling.check()
    assert told == [True, False]
    assert ceiling.peak == int(200 * MIB * HIGH)
    assert intake_bytes(256 * MIB) == 16 * MIB


def test_the_resident_size_is_read_from_proc() -> None:
    ceiling = MemoryCeiling(256 * MIB, ManualClock(), Counters())
    ceiling.check()
    assert 10 * MIB < ceiling.resident < 4096 * MIB


def _message(mid: int, size: int = 10) -> Inbound:
    return Inbound("t/a", b"x" * size, 1, False, mid)


async def test_a_session_near_the_ceiling_reads_a_few_messages_ahead_only() -> None:
    release = asyncio.Event()

    async def handler(message: Inbound) -> None:
        await release.wait()

    routes = Routes()
    routes.add("t/#", handler)
    paused: list[bool] = []
    inbox = Dispatch(routes, Counters(), ManualClock(), lambda mid, qos: None, paused.append)
    inbox.tighten(True)
    for mid in range(1, dispatch.TIGHT_PIPELINE + 1):
        inbox.deliver(_message(mid))
    assert paused == [True]  # at TIGHT_PIPELINE, not PIPELINE
    inbox.tighten(False)
    release.set()
    for _ in range(4 * dispatch.TIGHT_PIPELINE):
        await asyncio.sleep(0)
    assert paused == [True, False]
    await inbox.close()


async def test_a_session_holds_at_most_its_bytes() -> None:
    release = asyncio.Event()

    async def handler(message: Inbound) -> None:
        await release.wait()

    routes = Routes()
    routes.add("t/#", handler)
    paused: list[bool] = []
    counters = Counters()
    inbox = Dispatch(routes, counters, ManualClock(), lambda mid, qos: None, paused.append,
                     max_bytes=1000)
    for mid in range(1, 5):
        inbox.deliver(_message(mid, 300))
    assert paused == [True]  # 1,200 bytes held of 1,000: far below PIPELINE messages
    assert inbox.backlog().bytes == 1200
    # QoS 0 beyond the bound is dropped, counted
    inbox.deliver(Inbound("t/b", b"y" * 900, 0, False, 0))
    inbox.deliver(Inbound("t/c", b"y" * 200, 0, False, 0))
    assert counters.get("dropped", cls="telemetry", reason="incoming_backlog") == 1
    release.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert paused == [True, False]
    assert inbox.backlog().bytes == 0
    await inbox.close()


async def test_a_session_behind_its_socket_counts_from_when_it_fell_behind() -> None:
    clock = ManualClock()
    inbox = Dispatch(Routes(), Counters(), clock, lambda mid, qos: None, lambda paused: None)
    inbox.behind(True)
    clock.advance(2.0)
    inbox.behind(True)  # still behind: the start stays
    assert inbox.backlog().oldest_s == 2.0
    assert inbox.backlog().messages == 0  # all of it in the broker
    inbox.behind(False)
    assert inbox.backlog().oldest_s == 0.0
    await inbox.close()


def test_the_gateway_kind_is_no_device_kind_and_its_alert_has_labels() -> None:
    assert DeviceKind.GATEWAY not in DEVICE_KINDS
    assert MODELS[DeviceKind.GATEWAY].events == {"overloaded", "caught_up"}
    pack = load_pack(PACKS, builtin=True)
    rule = pack.rule("gateway.overloaded")
    assert rule is not None
    assert rule.escalation == "gateway_health"
    assert pack.escalations["gateway_health"].steps[0].group == "duty_office"
    assert load_pack(PACKS).rule("gateway.overloaded") is None  # a check of files alone
    assert CATALOGUES["zh-CN"]["rule.gateway.overloaded"] == "网关处理积压"
    assert CATALOGUES["en"]["rule.gateway.overloaded"] == "Gateway overloaded"


async def test_a_session_is_held_while_what_follows_is_behind() -> None:
    routes = Routes()
    routes.add("t/#", lambda message: None)
    behind = [True]
    resumed = asyncio.Event()
    paused: list[bool] = []

    def pause(flag: bool) -> None:
        paused.append(flag)
        if not flag:
            resumed.set()

    acked: list[int] = []
    inbox = Dispatch(routes, Counters(), ManualClock(), lambda mid, qos: acked.append(mid),
                     pause, behind=lambda: behind[0])
    inbox.deliver(_message(1))
    assert acked == [1]  # handled and acknowledged, and no more read
    assert paused == [True]
    behind[0] = False  # the sinks caught up: reading goes on without a message to say so
    await asyncio.wait_for(resumed.wait(), 5)
    assert paused == [True, False]
    await inbox.close()


async def test_a_session_of_qos0_messages_is_held_too_while_what_follows_is_behind() -> None:
    routes = Routes()
    routes.add("t/#", lambda message: None)
    paused: list[bool] = []
    inbox = Dispatch(routes, Counters(), ManualClock(), lambda mid, qos: None, paused.append,
                     behind=lambda: True)
    inbox.deliver(Inbound("t/a", b"x", 0, False, 0))
    assert paused == [True]
    await inbox.close()


async def test_qos0_messages_look_at_what_follows_once_per_look_every() -> None:
    routes = Routes()
    routes.add("t/#", lambda message: None)
    looks: list[int] = []
    behind = [False]
    delivered = [0]

    def looked() -> bool:
        looks.append(delivered[0])
        return behind[0]

    paused: list[bool] = []
    inbox = Dispatch(routes, Counters(), ManualClock(), lambda mid, qos: None, paused.append,
                     behind=looked)
    for n in range(1, 2 * LOOK_EVERY + 2):
        delivered[0] = n
        inbox.deliver(Inbound("t/a", b"x", 0, False, 0))
    # the first message looks, then every LOOK_EVERY-th after it
    assert looks == [1, 1 + LOOK_EVERY, 1 + 2 * LOOK_EVERY]
    assert paused == []
    behind[0] = True
    for n in range(2 * LOOK_EVERY + 2, 3 * LOOK_EVERY + 2):
        delivered[0] = n
        inbox.deliver(Inbound("t/a", b"x", 0, False, 0))
    assert looks[-1] == 1 + 3 * LOOK_EVERY  # held at the next look
    assert paused == [True]
    await inbox.close()


def test_a_gap_in_the_samples_starts_the_hold_again() -> None:
    watch = OverloadWatch(after_s=5, hold_s=10, clear_s=1)
    assert watch.observe(0, lanes(readings=60)) is None
    # the clock jumped a minute (a suspended process, a test's manual clock): nothing
    # says the lane stayed behind in between
    assert watch.observe(60, lanes(readings=60)) is None
    assert watch.observe(61, lanes(readings=60)) is None
    assert not watch.overloaded
    assert len(_watched(watch, 61.5, 70.5, readings=60)) == 1
    assert watch.overloaded  # watched for the hold time without a gap
