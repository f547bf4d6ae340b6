"""A Dahua terminal's event stream, held open by the client against the simulated terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.dahua.client import DahuaStream
from drivers.dahua.events import StreamEventError, parse_part
from gateway.core.clock import SystemClock
from gateway.core.config import DahuaDevice
from gateway.core.counters import Counters
from gateway.core.model import DeliveryClass, encode
from simulators.dahua_terminal import DahuaTerminal
from tests.drivers.hikvision_rig import Journalled, Receipts
from tests.drivers.push_rig import KEY
from tests.helpers import eventually, make_config

CARD, USER, NAME = "8F3A21C4", "1207", "Zhao Lei"


@dataclass
class DahuaRig:
    terminal: DahuaTerminal
    stream: DahuaStream
    intake: Journalled
    counters: Counters


@contextlib.asynccontextmanager
async def open_stream(tmp_path: Path, kind: str = "access", *, password: str = "dahua-admin-1",
                      **dahua: Any) -> AsyncIterator[DahuaRig]:
    async with DahuaTerminal() as terminal:
        config = make_config(tmp_path, site="dh", devices=[{
            "id": "door-dh", "kind": kind, "transport": "dahua",
            "dahua": {"host": "127.0.0.1", "port": terminal.port, "username": "admin",
                      "password": password, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
                      **dahua}}])
        device = config.devices[0]
        assert isinstance(device, DahuaDevice)
        counters, receipts = Counters(), Receipts()
        intake = Journalled(receipts)
        stream = DahuaStream(device, SystemClock(), counters, KEY, receipts)
        task = asyncio.create_task(stream.run(intake), name="test.dahua")
        try:
            yield DahuaRig(terminal, stream, intake, counters)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_access_events_become_typed_events_without_the_person(tmp_path: Path) -> None:
    async with open_stream(tmp_path) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        t = rig.terminal
        t.access(granted=True, card=CARD, user=USER, name=NAME, method=15)
        t.access(granted=False, card=CARD, user=USER, name=NAME, error=0x12)
        t.emit("DoorStatus", data={"Status": "Open", "UTC": 1_790_000_001})
        t.emit("BreakIn", data={"Door": 0, "UTC": 1_790_000_002})
        t.emit("DoorStatus", data={"Status": "Close", "UTC": 1_790_000_003})
        t.emit("AlarmLocal", "Start", 1, {"UTC": 1_790_000_004})
        t.emit("AlarmLocal", "Stop", 1, {"UTC": 1_790_000_005})
        t.emit("ChassisIntruded", "Start", 0, {"UTC": 1_790_000_006})
        t.emit("VideoMotion", "Start", 0)
        await eventually(lambda: len(rig.intake.journalled) == 8, what="eight events")
        events = rig.intake.journalled
        assert [(e.type, e.cls) for e in events] == [
            ("granted", DeliveryClass.EVENT), ("denied", DeliveryClass.EVENT),
            ("door_opened", DeliveryClass.EVENT), ("forced_open", DeliveryClass.ALARM),
            ("door_closed", DeliveryClass.EVENT), ("alarm_input", DeliveryClass.EVENT),
            ("alarm_input_cleared", DeliveryClass.EVENT), ("tamper", DeliveryClass.EVENT)]
        assert events[0].fields == {"door": 0, "method": "face", "card": KEY(CARD)}
        assert events[1].fields == {"door": 0, "method": "card", "reason": "no_permission",
                                    "card": KEY(CARD)}
        assert events[5].fields == {"input": 1}
        for event in events:
            for secret in (CARD, USER, NAME):
                assert secret.encode() not in encode(event)
        assert rig.counters.get("privacy_dropped", device="door-dh", what="name") == 2
        assert rig.counters.get("privacy_dropped", device="door-dh", what="employee_no") == 2
        await eventually(lambda: rig.counters.get("dahua_ignored", device="door-dh",
                                                  reason="event_code") == 1,
                         what="the motion event ignored")
        assert rig.intake.alive == {"door-dh"}


async def test_a_stream_dropped_mid_event_loses_and_doubles_nothing(tmp_path: Path) -> None:
    async with open_stream(tmp_path) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        t = rig.terminal
        for n in range(3):
            t.emit("BreakIn", data={"Door": n, "UTC": 1_790_000_100 + n})
        await eventually(lambda: len(rig.intake.journalled) == 3, what="three events")
        t.drop_mid_event()
        t.emit("BreakIn", data={"Door": 3, "UTC": 1_790_000_103})
        for n in range(4, 6):
            t.emit("BreakIn", data={"Door": n, "UTC": 1_790_000_100 + n})
        await eventually(lambda: len(rig.intake.journalled) >= 6, what="six events")
        await eventually(lambda: rig.counters.get("duplicates_dropped") == 1,
                         what="the event sent again recognised")
        assert [e.fields["door"] for e in rig.intake.journalled] == [0, 1, 2, 3, 4, 5]
        assert t.attaches == 2
        assert rig.counters.get("dahua_reconnects", device="door-dh") == 1


async def test_an_alarm_the_journal_refused_is_handed_over_again_until_it_is_taken(
    tmp_path: Path,
) -> None:
    """The terminal sends an event once: the stream waits while the alarm is handed over
    again, and the events after it follow it."""
    async with open_stream(tmp_path) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        rig.intake.refuse = 2
        rig.terminal.emit("BreakIn", data={"Door": 0, "UTC": 1_790_000_200})
        rig.terminal.emit("BreakIn", data={"Door": 1, "UTC": 1_790_000_201})
        await eventually(lambda: len(rig.intake.journalled) == 2, what="both events")
        assert [e.fields["door"] for e in rig.intake.journalled] == [0, 1]
        assert rig.intake.refused == rig.intake.journalled[:1] * 2
        assert rig.counters.get("journal_retries", device="door-dh") == 2
        assert rig.terminal.attaches == 1  # the stream was kept, not attached again


async def test_the_stream_is_read_on_while_a_refused_event_waits(tmp_path: Path) -> None:
    """A journal that cannot write for a while: the refused alarm waits in the stream's
    backlog, heartbeats and later events are read meanwhile (the terminal stays alive, the
    stream is kept), and the later event follows the alarm once the journal writes."""
    async with open_stream(tmp_path, heartbeat_s=1) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        rig.intake.refuse = 1_000
        rig.terminal.emit("BreakIn", data={"Door": 0, "UTC": 1_790_000_300})
        await eventually(lambda: bool(rig.intake.refused), what="the alarm refused")
        rig.intake.alive.clear()
        beats = rig.counters.get("heartbeats", device="door-dh")
        rig.terminal.emit("BreakIn", data={"Door": 1, "UTC": 1_790_000_301})
        await eventually(lambda: rig.counters.get("heartbeats", device="door-dh") > beats,
                         what="a heartbeat read while the alarm waits")
        assert rig.intake.alive == {"door-dh"}
        assert rig.intake.journalled == []
        rig.intake.refuse = 0
        await eventually(lambda: len(rig.intake.journalled) == 2, what="both events")
        assert [e.fields["door"] for e in rig.intake.journalled] == [0, 1]
        assert {e.fields["door"] for e in rig.intake.refused} == {0}
        assert rig.terminal.attaches == 1  # the stream was kept
        assert rig.counters.get("duplicates_dropped", device="door-dh") == 0


async def test_an_event_sent_again_while_its_first_copy_waits_is_journalled_once(
        tmp_path: Path) -> None:
    """The stream breaks while a refused alarm waits in the backlog; the terminal sends the
    alarm again on the new stream. The copy is recognised though the first is not in the
    journal yet: the alarm is journalled once, before the event after it."""
    async with open_stream(tmp_path) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        t = rig.terminal
        rig.intake.refuse = 1_000
        t.emit("BreakIn", data={"Door": 0, "UTC": 1_790_000_400})
        await eventually(lambda: bool(rig.intake.refused), what="the alarm refused")
        t.drop_mid_event()
        t.emit("BreakIn", data={"Door": 1, "UTC": 1_790_000_401})
        await eventually(lambda: rig.counters.get("duplicates_dropped", device="door-dh") == 1,
                         what="the alarm sent again recognised")
        assert t.attaches == 2
        rig.intake.refuse = 0
        await eventually(lambda: len(rig.intake.journalled) == 2, what="both events")
        assert [e.fields["door"] for e in rig.intake.journalled] == [0, 1]


async def test_thermal_terminal_reports_fever_and_no_person(tmp_path: Path) -> None:
    async with open_stream(tmp_path, "temp_gate") as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        rig.terminal.access(granted=True, card=CARD, user=USER, name=NAME, method=15,
                            CurrentTemperature=38.2, IsOverTemperature=1, TemperatureUnit=0,
                            Mask=2)
        await eventually(lambda: len(rig.intake.journalled) == 2, what="fever and no mask")
        assert [(e.type, e.fields) for e in rig.intake.journalled] == [
            ("fever", {"body_temp_c": 38.2}), ("no_mask", {})]
        (reading,) = rig.intake.readings
        assert reading.values == {"body_temp_c": 38.2, "abnormal": 1, "mask": 0}
        assert rig.counters.get("privacy_dropped", device="door-dh", what="card") == 1


async def test_wrong_credentials_journal_nothing_and_are_counted(tmp_path: Path) -> None:
    async with open_stream(tmp_path, password="not-the-password") as rig:
        rig.terminal.emit("BreakIn", data={"Door": 0, "UTC": 1})
        await eventually(lambda: rig.counters.get("dahua_reconnects", reason="unauthorised")
                         >= 2, what="refusals counted")
        assert rig.intake.journalled == []
        assert rig.intake.alive == set()


async def test_a_silent_stream_is_renewed_after_two_heartbeats(tmp_path: Path) -> None:
    async with open_stream(tmp_path, heartbeat_s=1) as rig:
        rig.terminal.silent = True
        await eventually(lambda: rig.counters.get("dahua_reconnects", reason="heartbeat") >= 1,
                         timeout=6, what="the silence noticed")
        await eventually(lambda: rig.terminal.attaches >= 2, what="a renewed stream")


def test_parts_are_read_or_refused_with_a_reason() -> None:
    # the documented part layout, and the multi-line JSON of access terminals
    event = parse_part('Code=AccessControl;action=Pulse;index=0;data={\n   "Door" : 0,\n'
                       '   "Status" : 1\n}\r\n')
    assert event is not None
    assert (event.code, event.action, event.index, event.data) == (
        "AccessControl", "Pulse", 0, {"Door": 0, "Status": 1})
    assert parse_part("Heartbeat\r\n") is None
    for bad in ("Code=X;action=Later;index=0", "Code=X;index=a", "nonsense",
                "Code=X;action=Pulse;index=0;data={"):
        try:
            parse_part(bad)
        except StreamEventError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


async def test_a_terminal_that_forgot_its_nonces_is_attached_again_at_once(
        tmp_path: Path) -> None:
    async with open_stream(tmp_path) as rig:
        await eventually(rig.stream.attached.is_set, what="the stream open")
        t = rig.terminal
        t.forget_nonces()  # the next attach answers a challenge the terminal forgot
        t.drop_mid_event()
        t.emit("BreakIn", data={"Door": 1, "UTC": 1_790_000_201})
        await eventually(lambda: len(rig.intake.journalled) == 1, what="the event")
        assert t.attaches == 2
        assert rig.counters.get("dahua_reconnects", reason="unauthorised") == 0
