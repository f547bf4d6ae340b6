"""One owner per Modbus bus, against simulated devices over a real pty line and real TCP.

The poll schedule runs on a manual clock: a test advances it by one poll interval and
waits (bounded) until every device was polled. Request counts and times come from the
simulator, which sees what actually went over the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from drivers.modbus import ModbusMap, plan_map
from drivers.modbus.bus import ModbusBusDriver
from drivers.profile import Profile, ProfileLibrary
from gateway.core.clock import ManualClock
from gateway.core.config import ModbusBusConfig, ModbusDevice
from gateway.core.counters import Counters
from gateway.core.model import DeliveryClass, DeviceEvent, Reading
from simulators.modbus_device import Fault, SimulatedDevice
from simulators.modbus_rtu import RtuBusSimulator
from simulators.modbus_tcp import TcpBusSimulator
from tests.helpers import Refusing, eventually

LIBRARY = ProfileLibrary()
MIXED = ["modbus-smoke-detector", "modbus-manhole-monitor", "modbus-door-io",
         "modbus-temp-gate"]
Transport = Literal["rtu", "tcp"]


class Collected(Refusing):
    """Intake that keeps what the driver hands over (or refuses it, see `Refusing`)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[DeviceEvent] = []
        self.readings: list[Reading] = []
        self.seen_count: Counter[str] = Counter()

    async def event(self, event: DeviceEvent) -> None:
        self.refusing([event])
        self.events.append(event)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def seen(self, device: str) -> None:
        self.seen_count[device] += 1

    def of(self, device: str) -> tuple[list[Reading], list[DeviceEvent]]:
        return ([r for r in self.readings if r.device == device],
                [e for e in self.events if e.device == device])


@dataclass
class Line:
    """Simulated units on one bus, and the driver that owns it."""

    sim: RtuBusSimulator | TcpBusSimulator
    units: dict[int, SimulatedDevice]
    driver: ModbusBusDriver
    clock: ManualClock
    counters: Counters
    intake: Collected
    task: asyncio.Task[None]
    poll_s: float
    timeout_s: float

    def polls(self, unit: int) -> int:
        return self.counters.get("modbus_polls", device=f"u{unit}")

    async def polled(self, times: int, units: list[int] | None = None) -> None:
        """Wait until every unit (or `units`) has been polled `times` times."""
        wanted = units if units is not None else list(self.units)

        def done() -> bool:
            if self.task.done():
                self.task.result()
            return all(self.polls(u) >= times for u in wanted)

        await eventually(done, timeout=20, what=f"{times} poll(s) of units {wanted}")

    async def cycle(self) -> None:
        """Advance one poll interval and wait until every unit was polled once more."""
        times = min(self.polls(u) for u in self.units) + 1
        self.clock.advance(self.poll_s)
        await self.polled(times)

    def requests(self) -> int:
        return sum(len(d.requests) for d in self.units.values())


def profile(name: str) -> Profile:
    return LIBRARY.get(name)


@contextlib.asynccontextmanager
async def on_line(transport: Transport, profiles: list[Profile], *, timeout_s: float = 0.3,
                  poll_s: float = 5.0, alarm_poll_s: float | None = None,
                  faithful_timing: bool = False, **bus: Any) -> AsyncIterator[Line]:
    """Units 1..n with the given profiles on one bus, polled by a running driver."""
    units = {unit: SimulatedDevice(unit, p) for unit, p in enumerate(profiles, start=1)}
    sim: RtuBusSimulator | TcpBusSimulator = (
        RtuBusSimulator(units.values(), baudrate=bus.get("baudrate", 9600),
                        faithful_timing=faithful_timing)
        if transport == "rtu" else TcpBusSimulator(units.values()))
    async with sim:
        where = ({"port": sim.port} if isinstance(sim, RtuBusSimulator)
                 else {"host": sim.host, "tcp_port": sim.port})
        config = ModbusBusConfig.model_validate({
            "id": "line1", "type": transport, "timeout_s": timeout_s, "inter_frame_ms": 2,
            "retry_max_s": poll_s, **where, **bus})
        devices = [(ModbusDevice.model_validate({
            "id": f"u{unit}", "kind": device.profile.kind, "transport": "modbus",
            "profile": device.profile.name,
            "modbus": {"bus": "line1", "unit": unit, "poll_s": poll_s,
                       "alarm_poll_s": alarm_poll_s or poll_s}}), device.profile)
            for unit, device in units.items()]
        clock, counters, intake = ManualClock(), Counters(), Collected()
        driver = ModbusBusDriver(config, devices, clock, counters)
        task = asyncio.create_task(driver.run(intake), name=f"test.{driver.name}")
        try:
            yield Line(sim, units, driver, clock, counters, intake, task, poll_s, timeout_s)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def twenty() -> list[Profile]:
    return [profile(MIXED[i % len(MIXED)]) for i in range(20)]


def full_blocks(device: SimulatedDevice) -> list[tuple[int, int, int]]:
    codes = {"coils": 1, "discrete_inputs": 2, "holding_registers": 3, "input_registers": 4}
    return [(codes[b.function], b.address, b.count) for b in plan_map(device.register_map).full]


def fast_blocks(device: SimulatedDevice) -> list[tuple[int, int, int]]:
    codes = {"coils": 1, "discrete_inputs": 2, "holding_registers": 3, "input_registers": 4}
    return [(codes[b.function], b.address, b.count) for b in plan_map(device.register_map).fast]


def asked(device: SimulatedDevice, since: int = 0) -> list[tuple[int, int, int]]:
    return [(r.function, r.address, r.count) for r in device.requests[since:]]


# -- the bus ------------------------------------------------------------------------------


async def test_twenty_units_one_request_per_block_per_cycle() -> None:
    async with on_line("rtu", twenty()) as line:
        await line.polled(1)
        expected = sum(len(full_blocks(d)) for d in line.units.values())
        assert expected == 40
        assert line.requests() == expected
        for device in line.units.values():
            assert asked(device) == full_blocks(device)
        before = {u: len(d.requests) for u, d in line.units.items()}
        await line.cycle()
        assert line.requests() == 2 * expected
        for unit, device in line.units.items():
            assert asked(device, before[unit]) == full_blocks(device)
        assert all(line.intake.seen_count[f"u{u}"] == 2 for u in line.units)
        assert line.counters.get("rejected") == 0


async def test_alarm_points_are_polled_between_full_polls() -> None:
    async with on_line("rtu", twenty(), poll_s=10, alarm_poll_s=2) as line:
        await line.polled(1)
        smoke = line.units[1]
        smoke.raise_alarm("alarm")
        smoke.set_reading("battery_pct", 55)  # slow telemetry: not read by the fast poll
        before = {u: len(d.requests) for u, d in line.units.items()}
        line.clock.advance(2)
        await line.polled(2)
        for unit, device in line.units.items():
            assert asked(device, before[unit]) == fast_blocks(device)
        assert line.requests() - sum(before.values()) == 30
        alarm = [e for e in line.intake.events if e.type == "alarm"]
        assert [(e.device, e.cls) for e in alarm] == [("u1", DeliveryClass.ALARM)]
        assert alarm[0].ts == line.clock.now_ms()
        assert "battery_pct" not in line.intake.of("u1")[0][-1].values
        line.clock.advance(8)  # t = 10: the full poll is due again
        await line.polled(3)
        assert line.intake.of("u1")[0][-1].values["battery_pct"] == 55
        for unit, device in line.units.items():
            assert asked(device, len(device.requests) - len(full_blocks(device))) \
                == full_blocks(device), unit


async def test_an_alarm_the_journal_refused_is_handed_over_again_until_it_is_taken() -> None:
    """The register still says alarm at the next poll, but the driver saw the change
    already: it is the alarm's only source. It hands it over again, with backoff, until
    the journal takes it, and the device's later change follows it in order."""
    async with on_line("rtu", [profile("modbus-smoke-detector")]) as line:
        await line.polled(1)
        line.intake.refuse = 3
        line.units[1].raise_alarm("alarm")
        await line.cycle()  # the alarm seen, refused, and waiting
        assert line.intake.refused
        assert not line.intake.events
        line.units[1].clear_alarm("alarm")
        await line.cycle()  # the clear waits behind it

        def taken() -> bool:
            line.clock.advance(0.05)  # the retries' backoff runs on the manual clock
            return len(line.intake.events) == 2

        await eventually(taken, what="the alarm and its clear taken")
        alarm, clear = line.intake.events
        assert (alarm.type, clear.type) == ("alarm", "alarm_cleared")
        assert alarm.ts < clear.ts
        assert line.intake.refused == [alarm] * 3  # the same event, its time kept
        assert line.counters.get("journal_retries", device="u1") == 3
        await line.cycle()  # polling goes on; nothing new
        assert len(line.intake.events) == 2


async def test_the_other_devices_are_polled_while_one_devices_alarm_waits() -> None:
    """A journal that cannot write for a while: the refused alarm waits in its device's
    backlog while the bus polls every device on (none of them looks offline), and a
    second device's alarm waits in its own."""
    async with on_line("rtu", [profile("modbus-smoke-detector")] * 3) as line:
        await line.polled(1)
        line.intake.refuse = 1_000
        line.units[1].raise_alarm("alarm")
        line.units[3].raise_alarm("alarm")
        for _ in range(4):
            seen = dict(line.intake.seen_count)
            await line.cycle()
            assert all(line.intake.seen_count[d] > seen[d] for d in ("u1", "u2", "u3"))
        assert not line.intake.events
        assert {e.device for e in line.intake.refused} == {"u1", "u3"}
        assert line.driver.waiting() == {"u1": 1, "u2": 0, "u3": 1}
        line.intake.refuse = 0

        def taken() -> bool:
            line.clock.advance(1.0)
            return len(line.intake.events) == 2

        await eventually(taken, what="both alarms taken")
        assert sorted((e.device, e.type) for e in line.intake.events) == [
            ("u1", "alarm"), ("u3", "alarm")]
        assert line.driver.waiting() == {"u1": 0, "u2": 0, "u3": 0}


def _wait_after(line: Line, unit: int, since: dict[int, int]) -> float:
    """How long the line stayed quiet after `unit`'s request of this cycle: from it to the
    next request to any unit. Each request is stamped when the simulator has read it: a
    busy machine can stamp the first one late (by milliseconds), shortening the gap."""
    asked_at = line.units[unit].requests[since[unit]].at
    return min(r.at for u, d in line.units.items() for r in d.requests[since[u]:]
               if r.at > asked_at) - asked_at


async def test_a_dead_unit_delays_the_others_by_one_timeout_per_cycle(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.modbus.bus")
    async with on_line("rtu", twenty(), timeout_s=0.4) as line:
        await line.polled(1)
        dead = line.units[7]  # a manhole monitor: two blocks per full poll
        assert len(full_blocks(dead)) == 2
        dead.fail(Fault.NO_ANSWER)
        seen_before = line.intake.seen_count["u7"]
        for n in range(2):
            since = {u: len(d.requests) for u, d in line.units.items()}
            await line.cycle()
            # one request to the dead unit, not one per block; the others fully served
            assert len(dead.requests) - since[7] == 1
            for unit, device in line.units.items():
                if unit != 7:
                    assert asked(device, since[unit]) == full_blocks(device)
            # the line waits one timeout for it, not one per block (two would be 0.8 s);
            # the lower bound leaves 10 % for the stamps' lateness (a run measured 0.398 s)
            quiet = _wait_after(line, 7, since)
            assert line.timeout_s * 0.9 <= quiet < line.timeout_s * 1.9, (n, quiet)
            assert line.counters.get("rejected", device="u7", reason="timeout") == n + 1
        assert line.intake.seen_count["u7"] == seen_before
        assert _warnings(caplog, "u7") == 1

        dead.heal()
        await line.cycle()
        assert line.intake.seen_count["u7"] == seen_before + 1
        assert asked(dead)[-2:] == full_blocks(dead)

        dead.fail(Fault.NO_ANSWER)  # recovered in between: the next outage is logged again
        await line.cycle()
        assert _warnings(caplog, "u7") == 2
        assert line.counters.get("rejected", device="u7") == 3
        assert line.counters.get("rejected") == 3


async def test_a_dead_unit_is_retried_with_capped_backoff() -> None:
    async with on_line("rtu", twenty()[:4], timeout_s=0.2, poll_s=1, retry_max_s=8) as line:
        await line.polled(1)
        dead = line.units[2]
        dead.fail(Fault.NO_ANSWER)
        alive = [1, 3, 4]
        asked_in: list[int] = []  # the cycles in which the dead unit was asked
        for n in range(1, 25):
            before = len(dead.requests)
            line.clock.advance(1)
            await line.polled(n + 1, alive)
            # the dead unit, when due, comes in the same pass as the others
            if len(dead.requests) > before:
                asked_in.append(n)
        assert asked_in[0] == 1
        gaps = [b - a for a, b in itertools.pairwise(asked_in)]
        assert max(gaps) <= 8  # the cap
        assert len(asked_in) < 24  # backing off: not asked every cycle
        assert line.counters.get("rejected", device="u2", reason="timeout") == len(asked_in)


def _warnings(caplog: pytest.LogCaptureFixture, device: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(f"{device}: input "
                                                                       "rejected"))


FAULTS: dict[Transport, dict[int, tuple[Fault | None, str]]] = {
    # unit -> (fault, the reason it is counted under); unit 9 is a smoke detector whose
    # obscuration is out of range
    "rtu": {2: (Fault.CRC, "crc"), 3: (Fault.GARBAGE, "garbage"),
            4: (Fault.TRUNCATED, "truncated"), 5: (Fault.WRONG_UNIT, "wrong_unit"),
            6: (Fault.NO_ANSWER, "timeout"), 7: (Fault.EXCEPTION, "exception_code"),
            9: (None, "out_of_range")},
    "tcp": {3: (Fault.GARBAGE, "garbage"), 4: (Fault.TRUNCATED, "truncated"),
            5: (Fault.WRONG_UNIT, "wrong_unit"), 6: (Fault.NO_ANSWER, "timeout"),
            7: (Fault.EXCEPTION, "exception_code"), 9: (None, "out_of_range")},
}


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
async def test_every_fault_is_named_counted_and_logged_once_while_the_rest_is_served(
        transport: Transport, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.modbus.bus")
    faults = FAULTS[transport]
    async with on_line(transport, twenty(), timeout_s=0.25) as line:
        await line.polled(1)
        for unit, (fault, _) in faults.items():
            if fault is None:
                line.units[unit].out_of_range("obscuration_pct_ft")
            else:
                line.units[unit].fail(fault)
        cycles = 3
        for _ in range(cycles):
            await line.cycle()
        for unit, (_, reason) in faults.items():
            device = f"u{unit}"
            assert line.counters.get("rejected", device=device, reason=reason) == cycles, device
            assert line.counters.get("rejected", device=device) == cycles, device
            assert _warnings(caplog, device) == 1, device
        for unit in line.units:
            if unit not in faults:
                assert line.intake.seen_count[f"u{unit}"] == cycles + 1
                assert len(line.intake.of(f"u{unit}")[0]) == cycles + 1
        # the out-of-range device is alive; only the bad value is dropped
        assert line.intake.seen_count["u9"] == cycles + 1
        last = line.intake.of("u9")[0][-1].values
        assert "obscuration_pct_ft" not in last
        assert "battery_pct" in last

        line.units[9].set_reading("obscuration_pct_ft", 1.0)
        for unit in faults:
            line.units[unit].heal()
        await line.cycle()
        for unit in faults:
            assert line.intake.seen_count[f"u{unit}"] >= 2, unit
        assert line.counters.get("rejected") == cycles * len(faults)


async def test_a_slow_answer_within_the_timeout_is_fine() -> None:
    async with on_line("rtu", twenty()[:4], timeout_s=0.5) as line:
        line.units[2].fail(Fault.SLOW, delay_s=0.1)
        await line.polled(1)
        await line.cycle()
        assert line.counters.get("rejected") == 0
        assert line.intake.seen_count["u2"] == 2


async def test_timing_faithful_line_spaces_frames_by_their_length() -> None:
    async with on_line("rtu", twenty()[:4], timeout_s=1.0, faithful_timing=True,
                       baudrate=9600) as line:
        await line.polled(1)
        sim = line.sim
        assert isinstance(sim, RtuBusSimulator)
        requests = sorted((r.at, r.function, r.count) for d in line.units.values()
                          for r in d.requests)
        assert len(requests) == 8
        for (at, function, count), (next_at, _, _) in itertools.pairwise(requests):
            answer = 5 + ((count + 7) // 8 if function in (1, 2) else 2 * count)
            # answer on the wire, the next request on the wire, and the silence after it
            least = sim.frame_s(answer) + sim.frame_s(8) + sim.frame_s(3.5)
            assert next_at - at >= least * 0.95
        assert len(line.intake.readings) == 4


async def test_cancelling_during_a_request_ends_the_task_and_frees_the_port() -> None:
    async with on_line("rtu", twenty()[:2], timeout_s=10.0) as line:
        for device in line.units.values():
            device.fail(Fault.NO_ANSWER)
        await eventually(lambda: line.requests() == 1, what="a request in flight")
        line.task.cancel()
        # pymodbus turns the cancellation into ModbusIOException; the driver turns it back
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(line.task), timeout=5)
        assert line.task.cancelled()
        sim = line.sim
        assert isinstance(sim, RtuBusSimulator)
        # the driver opened the port with an exclusive lock: it is free again once closed
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


async def test_a_stop_that_arrives_with_an_answer_still_stops_the_bus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.11's wait_for (inside pymodbus) returns an answer that completed together
    # with the cancellation and drops the cancellation; the race is rare on a real line,
    # so the read here lets the answer through exactly that way
    made = ModbusBusDriver._client

    def client(driver: ModbusBusDriver) -> Any:
        real = made(driver)
        read = real.read_discrete_inputs

        async def answered_as_stopped(*args: Any, **kwargs: Any) -> Any:
            response = await read(*args, **kwargs)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            return response

        real.read_discrete_inputs = answered_as_stopped  # type: ignore[method-assign]
        return real

    monkeypatch.setattr(ModbusBusDriver, "_client", client)
    async with on_line("tcp", [profile("modbus-smoke-detector")]) as line:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(line.task), timeout=5)
        assert line.task.cancelled()
        assert line.polls(1) <= 1


async def test_tcp_connection_dropped_by_the_gateway_is_reopened() -> None:
    async with on_line("tcp", twenty()[:4]) as line:
        await line.polled(1)
        sim = line.sim
        assert isinstance(sim, TcpBusSimulator)
        assert sim.connections == 1
        sim.disconnect()
        line.clock.advance(line.poll_s)
        await eventually(lambda: line.counters.get("modbus_link_down") >= 1, what="link down")

        def reopened() -> bool:
            line.clock.advance(0.5)  # the reconnect backoff runs on the manual clock
            return all(line.polls(u) >= 2 for u in line.units)

        await eventually(reopened, what="polls after reconnecting")
        assert sim.connections == 1
        assert line.counters.get("rejected") == 0


async def test_a_missing_serial_port_is_retried_without_crashing(tmp_path: Any) -> None:
    config = ModbusBusConfig(id="nowhere", type="rtu", port=str(tmp_path / "ttyUSB9"),
                             retry_max_s=2)
    smoke = profile("modbus-smoke-detector")
    device = ModbusDevice.model_validate({
        "id": "s1", "kind": "smoke", "transport": "modbus", "profile": smoke.name,
        "modbus": {"bus": "nowhere", "unit": 1}})
    clock, counters = ManualClock(), Counters()
    driver = ModbusBusDriver(config, [(device, smoke)], clock, counters)
    task = asyncio.create_task(driver.run(Collected()), name="test.nowhere")
    await eventually(lambda: counters.get("modbus_link_down") >= 1, what="a failed open")
    clock.advance(2)
    await eventually(lambda: counters.get("modbus_link_down") >= 2, what="a retried open")
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_devices_of_another_bus_or_protocol_are_refused() -> None:
    bus = ModbusBusConfig(id="a", type="tcp", host="127.0.0.1")
    smoke = profile("modbus-smoke-detector")

    def device(bus_id: str, unit: int, name: str) -> ModbusDevice:
        return ModbusDevice.model_validate({
            "id": name, "kind": "smoke", "transport": "modbus", "profile": smoke.name,
            "modbus": {"bus": bus_id, "unit": unit}})

    with pytest.raises(ValueError, match="on bus b"):
        ModbusBusDriver(bus, [(device("b", 1, "x"), smoke)], ManualClock(), Counters())
    with pytest.raises(ValueError, match="share unit 1"):
        ModbusBusDriver(bus, [(device("a", 1, "x"), smoke), (device("a", 1, "y"), smoke)],
                        ManualClock(), Counters())
    json_profile = profile("zigbee-smoke")
    assert not isinstance(json_profile.mapping, ModbusMap)
    with pytest.raises(ValueError, match="not a modbus profile"):
        ModbusBusDriver(bus, [(device("a", 1, "x"), json_profile)], ManualClock(), Counters())
