"""Serial frame devices over real pty pairs: the shipped profiles, faults, unplugging."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.profile import BUILTIN, ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames import build_frame
from drivers.serial_frames.driver import SerialFrameDriver
from gateway.core.clock import ManualClock
from gateway.core.config import SerialDevice
from gateway.core.counters import Counters
from gateway.core.model import DeliveryClass, DeviceEvent, DeviceKind, Reading, encode
from simulators.serial_device import Fault, SerialDeviceSimulator
from tests.helpers import Refusing, eventually, make_config

KEY = Pseudonymiser(b"site-secret-key-for-tests-only!!")
CARD = "12345678"
NAME = "Zhang Wei"


class Collected(Refusing):
    """Intake that keeps what the drivers hand over (or refuses it, see `Refusing`)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[DeviceEvent] = []
        self.readings: list[Reading] = []
        self.alive: set[str] = set()

    async def event(self, event: DeviceEvent) -> None:
        self.refusing([event])
        self.events.append(event)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.alive.add(device)

    def events_of(self, device: str) -> list[DeviceEvent]:
        return [e for e in self.events if e.device == device]

    def readings_of(self, device: str) -> list[Reading]:
        return [r for r in self.readings if r.device == device]


@dataclass
class Rig:
    clock: ManualClock
    counters: Counters
    intake: Collected
    devices: dict[str, SerialDeviceSimulator]
    drivers: dict[str, SerialFrameDriver]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def rejected(self, device: str, reason: str) -> int:
        return self.counters.get("rejected", device=device, reason=reason)


_DEVICES = {"door-1": ("access", "serial-access-controller"),
            "gate-1": ("temp_gate", "serial-temp-gate")}


async def _rig(tmp_path: Path, pseudonymise: Pseudonymiser | None) -> AsyncIterator[Rig]:
    config = make_config(tmp_path, site="s", devices=[
        {"id": device, "kind": kind, "transport": "serial", "profile": profile,
         "serial": {"port": str(tmp_path / f"tty-{device}"), "baudrate": 115_200}}
        for device, (kind, profile) in _DEVICES.items()])
    library = ProfileLibrary([BUILTIN])
    rig = Rig(ManualClock(), Counters(), Collected(), {}, {})
    for device in config.devices:
        assert isinstance(device, SerialDevice)
        assert device.profile is not None
        profile = library.get(device.profile)
        simulator = SerialDeviceSimulator(profile, Path(device.serial.port))
        simulator.open()
        rig.devices[device.id] = simulator
        driver = SerialFrameDriver(device, profile, rig.clock, rig.counters, pseudonymise)
        rig.drivers[device.id] = driver
        rig.tasks.append(asyncio.create_task(driver.run(rig.intake), name=f"test.{device.id}"))
    for driver in rig.drivers.values():
        await asyncio.wait_for(driver.connected.wait(), 5)
    try:
        yield rig
    finally:
        for task in rig.tasks:
            task.cancel()
        for task in rig.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for simulator in rig.devices.values():
            simulator.disconnect()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for value in _rig(tmp_path, KEY):
        yield value


@pytest.fixture
async def keyless_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for value in _rig(tmp_path, None):
        yield value


def _ticking(clock: ManualClock, seconds: float,
             condition: Callable[[], bool]) -> Callable[[], bool]:
    """A condition that moves the clock on each time it is polled."""

    def check() -> bool:
        clock.advance(seconds)
        return condition()

    return check


def _at_least(rig: Rig, device: str, reason: str, count: int) -> bool:
    return rig.rejected(device, reason) >= count


async def _events(rig: Rig, device: str, count: int) -> list[DeviceEvent]:
    await eventually(lambda: len(rig.intake.events_of(device)) >= count,
                     what=f"{count} events from {device}")
    return rig.intake.events_of(device)


async def test_access_controller_frames_become_typed_events(rig: Rig) -> None:
    door = rig.devices["door-1"]
    await door.send("heartbeat")
    await door.send("door_event", {"reason": 1, "door": 2, "card": CARD,
                                   "holder_name": NAME})
    await door.send("door_event", {"reason": 2, "door": 2, "card": "0087654321"})
    await door.send("door_event", {"reason": 3, "door": 1})
    await door.send("door_event", {"reason": 4, "door": 1})
    await door.send("door_event", {"reason": 5, "door": 3, "card": CARD})
    await door.send("door_contact", {"door": 1, "open": 1})
    events = await _events(rig, "door-1", 6)
    assert [(e.type, e.cls) for e in events] == [
        ("granted", DeliveryClass.EVENT), ("denied", DeliveryClass.EVENT),
        ("forced_open", DeliveryClass.ALARM), ("held_open", DeliveryClass.EVENT),
        ("duress", DeliveryClass.ALARM), ("door_opened", DeliveryClass.EVENT)]
    assert all(e.kind is DeviceKind.ACCESS and e.ts == rig.clock.now_ms() for e in events)
    assert events[0].fields == {"door": 2, "card": KEY(CARD)}
    # leading zeros do not make a second pseudonym for the same card
    assert events[1].fields == {"door": 2, "card": KEY("87654321")}
    assert events[2].fields == {"door": 1}  # no card involved: none invented
    assert events[4].fields["card"] == KEY(CARD)
    assert events[5].fields == {"door": 1, "door_open": 1}
    [reading] = rig.intake.readings_of("door-1")
    assert reading.values == {"door_open": 1}
    assert "door-1" in rig.intake.alive
    assert rig.counters.get("rejected", device="door-1") == 0
    records: list[DeviceEvent | Reading] = [*events, reading]
    for record in records:
        encoded = encode(record)
        assert CARD.encode() not in encoded
        assert b"87654321" not in encoded
        assert NAME.encode() not in encoded


async def test_temperature_gate_frames_become_readings_and_alarms(rig: Rig) -> None:
    gate = rig.devices["gate-1"]
    await gate.send("passage", {"temperature": 36.6, "abnormal": 0, "mask": 1,
                                "passages": 1041, "person_name": NAME, "face_id": b"\x01\x02"})
    await gate.send("passage", {"temperature": 38.4, "abnormal": 1, "mask": 0,
                                "passages": 1042, "person_name": NAME})
    await gate.send("heartbeat")
    events = await _events(rig, "gate-1", 2)
    await eventually(lambda: len(rig.intake.readings_of("gate-1")) == 2, what="readings")
    first, second = rig.intake.readings_of("gate-1")
    assert first.values == {"body_temp_c": 36.6, "abnormal": 0, "mask": 1, "passage_count": 1041}
    assert second.values == {"body_temp_c": 38.4, "abnormal": 1, "mask": 0,
                             "passage_count": 1042}
    assert [(e.type, e.cls) for e in events] == [("fever", DeliveryClass.ALARM),
                                                 ("no_mask", DeliveryClass.EVENT)]
    assert events[0].fields == second.values
    records: list[DeviceEvent | Reading] = [*events, first, second]
    for record in records:
        assert NAME.encode() not in encode(record)
        assert "card" not in encode(record).decode()


async def test_an_alarm_the_journal_refused_is_handed_over_again_until_it_is_taken(
    rig: Rig,
) -> None:
    """A frame is sent once and never confirmed: the driver is its alarm's only source.
    It hands the alarm over again until the journal takes it; the frames after it wait."""
    door = rig.devices["door-1"]
    rig.intake.refuse = 2
    await door.send("door_event", {"reason": 3, "door": 1})  # forced open: an alarm
    await door.send("door_event", {"reason": 1, "door": 2, "card": CARD})
    await eventually(_ticking(rig.clock, 0.01, lambda: len(rig.intake.events) == 2),
                     what="both events taken")
    assert [e.type for e in rig.intake.events_of("door-1")] == ["forced_open", "granted"]
    assert rig.intake.refused == rig.intake.events[:1] * 2
    assert rig.counters.get("journal_retries", device="door-1") == 2


async def test_the_port_is_read_on_while_a_refused_event_waits(rig: Rig) -> None:
    """A journal that cannot write for a while: the refused alarm waits in the driver's
    backlog, the frames after it are read and decoded meanwhile (the device stays alive),
    and the later event follows the alarm in order once the journal writes again."""
    door = rig.devices["door-1"]
    rig.intake.refuse = 1_000
    await door.send("door_event", {"reason": 3, "door": 1})  # forced open: an alarm
    await eventually(lambda: bool(rig.intake.refused), what="the alarm refused")
    rig.intake.alive.clear()
    for _ in range(3):
        await door.send("heartbeat")
    await door.send("door_event", {"reason": 1, "door": 2, "card": CARD})
    await eventually(lambda: rig.counters.get("serial_frames", device="door-1") == 5,
                     what="every frame read while the alarm waits")
    assert rig.intake.alive == {"door-1"}
    assert rig.intake.events == []
    rig.intake.refuse = 0
    await eventually(_ticking(rig.clock, 1.0, lambda: len(rig.intake.events) == 2),
                     what="both events taken")
    assert [e.type for e in rig.intake.events_of("door-1")] == ["forced_open", "granted"]
    assert {e.type for e in rig.intake.refused} == {"forced_open"}


async def test_resynchronises_after_garbage_on_the_line(rig: Rig) -> None:
    gate = rig.devices["gate-1"]
    frame = gate.frame("passage", {"abnormal": 1})
    # noise, a frame delivered in dribbles, a stray header byte, noise glued to a frame
    await gate.send_raw(gate.garbage(20))
    for i in range(0, len(frame), 3):
        await gate.send_raw(frame[i:i + 3])
    await gate.send_raw(b"\x5a" + gate.garbage(5) + frame)
    await _events(rig, "gate-1", 2)
    assert rig.rejected("gate-1", "garbage") >= 2
    assert rig.counters.get("serial_dropped_bytes", device="gate-1") == 26
    assert rig.counters.get("rejected", device="gate-1") == rig.rejected("gate-1", "garbage")


@pytest.mark.parametrize(("fault", "reason"), [
    (Fault.GARBAGE, "garbage"),
    (Fault.CORRUPT_CHECKSUM, "bad_checksum"),
    (Fault.TRUNCATED, "truncated"),
    (Fault.OUT_OF_RANGE, "out_of_range"),
])
async def test_every_fault_is_rejected_counted_and_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture, fault: Fault, reason: str
) -> None:
    gate, door = rig.devices["gate-1"], rig.devices["door-1"]
    caplog.set_level(logging.WARNING, logger="drivers.serial_frames.driver")
    for sent in range(1, 4):
        await gate.send("passage", {"abnormal": 0}, fault=fault)
        if fault is Fault.TRUNCATED:
            # the rest never comes: the frame times out on the gateway's clock
            timed_out = functools.partial(_at_least, rig, "gate-1", reason, sent)
            await eventually(_ticking(rig.clock, 0.25, timed_out),
                             what="the truncated frame to time out")
        # the other device is served all the while
        await door.send("door_event", {"reason": 3, "door": sent})
        await _events(rig, "door-1", sent)
    await eventually(lambda: rig.rejected("gate-1", reason) == 3, what=f"3 x {reason}")
    logged = [r for r in caplog.records if "gate-1" in r.getMessage() and reason in
              r.getMessage()]
    assert len(logged) == 1
    await gate.send("passage", {"abnormal": 1})
    [fever] = await _events(rig, "gate-1", 1)
    assert fever.type == "fever"
    assert rig.counters.get("rejected", device="door-1") == 0
    if fault is Fault.OUT_OF_RANGE:
        # the bad value is dropped, the rest of each frame is kept
        assert all("body_temp_c" not in r.values for r in rig.intake.readings_of("gate-1")[:3])


async def test_an_unplugged_port_is_reopened_with_backoff(rig: Rig,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    gate, door = rig.devices["gate-1"], rig.devices["door-1"]
    driver = rig.drivers["gate-1"]
    await gate.send_raw(gate.frame("passage")[:9])  # cut off mid-frame by the unplugging
    await eventually(lambda: rig.counters.get("serial_bytes", device="gate-1") == 9,
                     what="the gateway to read the bytes")
    gate.disconnect()
    await eventually(lambda: not driver.connected.is_set(), what="the loss noticed")
    assert rig.counters.get("serial_port_lost", device="gate-1") == 1
    await eventually(lambda: rig.rejected("gate-1", "truncated") == 1, what="truncated")
    # while it is away, retries fail and are counted; the other device is unaffected
    await eventually(_ticking(rig.clock, 1.0, lambda: rig.counters.get(
        "serial_open_failed", device="gate-1") >= 2), what="failed reopen attempts")
    await door.send("door_event", {"reason": 1, "door": 1, "card": CARD})
    await _events(rig, "door-1", 1)
    gate.reconnect()
    await eventually(_ticking(rig.clock, 1.0, driver.connected.is_set),
                     what="the port reopened")
    assert rig.counters.get("serial_port_opened", device="gate-1") == 2
    await gate.send("passage", {"abnormal": 1})
    [fever] = await _events(rig, "gate-1", 1)
    assert fever.type == "fever"
    outage = [r for r in caplog.records if r.getMessage().startswith(("gate-1: lost",
                                                                      "gate-1: cannot open"))]
    assert len(outage) == 1  # one outage, one warning, however many retries


async def test_without_a_pseudonym_key_card_numbers_are_dropped(keyless_rig: Rig) -> None:
    rig = keyless_rig
    await rig.devices["door-1"].send("door_event", {"reason": 1, "door": 4, "card": CARD})
    [granted] = await _events(rig, "door-1", 1)
    assert granted.fields == {"door": 4}
    assert CARD.encode() not in encode(granted)
    assert rig.rejected("door-1", "no_pseudonym_key") == 1


async def test_unknown_frame_types_are_counted_but_show_the_device_alive(rig: Rig) -> None:
    door = rig.devices["door-1"]
    await door.send_raw(build_frame(door.format, 0x7E, b"\x00"))
    await eventually(lambda: rig.rejected("door-1", "unknown_type") == 1, what="unknown type")
    assert "door-1" in rig.intake.alive
    assert rig.intake.events_of("door-1") == []
