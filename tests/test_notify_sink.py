"""The notify sink on an injected clock: each target on its own, each attempt limited, what
was delivered recorded for good, and no fsync for records that are not notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec

from gateway.core.clock import ManualClock
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind, Notify, NotifyReason, Severity
from gateway.journal import Journal
from gateway.sinks.notify_sink import DONE_KEY, NotifySink
from tests.helpers import eventually
from tests.webhook import webhook

T0 = 1_767_225_600_000


class AwayBroker:
    """Publishes the way MqttLink.publish does: it waits for a connection to the broker,
    which is there once `up` is set; the first `failures` publishes fail."""

    def __init__(self, failures: int = 0) -> None:
        self.up = asyncio.Event()
        self.failures = failures
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None:
        await self.up.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection lost before the PUBACK")
        self.published.append((topic, payload))

    def ids(self) -> list[tuple[str, str]]:
        return [(topic, msgspec.json.decode(payload, type=Notify).id)
                for topic, payload in self.published]


def _intent(alert: str, group: str, targets: list[str]) -> Notify:
    return Notify(id=Notify.step_id(alert, 0, 0), ts=T0, alert_id=alert, rule="elder.sos",
                  device="elder-1", severity=Severity.CRITICAL, reason=NotifyReason.ESCALATION,
                  step=0, round=0, group=group, targets=tuple(targets), message="Elder SOS")


@asynccontextmanager
async def _running(sink: NotifySink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.run(), name="test.notify")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(clock: ManualClock, done: Callable[[], bool], steps: int = 20) -> None:
    """Move the clock from one sleeper's deadline to the next until `done`."""
    for _ in range(steps):
        await eventually(lambda: done() or bool(clock.deadlines()), what="a sleeper")
        if done():
            return
        clock.advance(clock.deadlines()[0] - clock.monotonic())
    raise AssertionError(f"not done after {steps} deadlines")


async def test_a_target_that_never_answers_delays_nobody_and_is_given_up(
    tmp_path: Path,
) -> None:
    clock, counters, broker = ManualClock(T0), Counters(), AwayBroker()
    async with webhook() as hook, Journal(tmp_path / "j.db") as journal:
        await journal.commit([_intent("a1", "duty_office", ["mqtt://sc/t/duty"]),
                              _intent("a2", "property_manager", [hook.url("manager")])])
        sink = NotifySink(journal, broker, clock, counters, give_up_s=45, attempt_s=30)
        async with _running(sink):
            # the e-mail behind the broker's notification goes at once
            await eventually(lambda: hook.paths() == ["manager"], what="the second intent")
            await eventually(lambda: clock.deadlines() == [30.0], what="the attempt's limit")
            assert sink.cursor == 0  # the first intent is still open
            await _until(clock, lambda: sink.cursor == 2)
    assert broker.published == []
    assert counters.get("notified", group="property_manager") == 1
    assert counters.get("notify_failed", group="duty_office") == 1
    assert counters.get("notify_retries", group="duty_office") >= 1
    # every attempt ended at its limit: given up at the first failure after 45 s
    assert 60 <= clock.monotonic() <= 30 + 60 + 30


async def test_a_target_done_before_a_restart_is_not_sent_again(tmp_path: Path) -> None:
    clock, broker = ManualClock(T0), AwayBroker()
    async with webhook() as hook:
        intent = _intent("a1", "duty_office", [hook.url("office"), "mqtt://sc/t/duty"])
        async with Journal(tmp_path / "j.db") as journal:
            await journal.append(intent)
            counters = Counters()
            sink = NotifySink(journal, broker, clock, counters)
            async with _running(sink):
                await eventually(lambda: counters.get("notified", group="duty_office") == 1,
                                 what="the webhook delivered and recorded")
                assert sink.cursor == 0  # the broker's target is still open
        # the gateway stops here; the broker is back when it starts again
        broker.up.set()
        async with Journal(tmp_path / "j.db") as journal:
            sink = NotifySink(journal, broker, clock, Counters())
            async with _running(sink):
                await eventually(lambda: sink.cursor == 1, what="the intent done")
            assert await journal.read_state(DONE_KEY + intent.id) is None  # nothing kept
        assert hook.paths() == ["office"]  # once, not again after the restart
    assert broker.ids() == [("sc/t/duty", intent.id)]


async def test_what_goes_to_one_target_keeps_its_order(tmp_path: Path) -> None:
    clock, broker = ManualClock(T0), AwayBroker(failures=1)
    broker.up.set()
    began = _intent("a1", "duty_office", ["mqtt://sc/t/duty", "mqtt://sc/t/log"])
    ended = Notify(**{**msgspec.structs.asdict(began), "id": Notify.resolved_id("a1", "duty"),
                      "reason": NotifyReason.RESOLVED, "targets": ("mqtt://sc/t/duty",)})
    async with Journal(tmp_path / "j.db") as journal:
        await journal.commit([began, ended])
        sink = NotifySink(journal, broker, clock, Counters())
        async with _running(sink):
            # the first publish fails: the alert's start waits for its retry, and its end
            # waits for the start; the other target is not held up
            await eventually(lambda: broker.ids() == [("sc/t/log", began.id)],
                             what="the other target")
            await _until(clock, lambda: sink.cursor == 2)
    assert broker.ids() == [("sc/t/log", began.id), ("sc/t/duty", began.id),
                            ("sc/t/duty", ended.id)]


async def test_records_that_are_not_notifications_cost_no_fsync(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    async with webhook() as hook, Journal(tmp_path / "j.db") as journal:
        await journal.commit([make_event(DeviceKind.SMOKE, f"s{n}", "low_battery", T0 + n)
                              for n in range(3)])
        before = journal.commits
        sink = NotifySink(journal, AwayBroker(), clock, Counters())
        async with _running(sink):
            await eventually(lambda: sink.cursor == 3, what="the events passed")
            assert journal.commits == before
            await journal.append(_intent("a1", "family", [hook.url("family")]))
            await eventually(lambda: sink.cursor == 4, what="the intent delivered")
        # the intent's own commit, and one recording its delivery with the cursor
        assert journal.commits == before + 2
        assert hook.paths() == ["family"]
