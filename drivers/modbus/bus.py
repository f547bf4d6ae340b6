"""The owner of one Modbus bus: one task serialises every request on an RS-485 line or a
Modbus TCP connection and polls each device on its own schedule.

A device that does not answer costs at most one timeout per cycle: its remaining blocks
are skipped and it is retried with capped backoff while the others are served. Every
failure is counted per device and reason (timeout, crc, garbage, truncated, wrong_unit,
exception_code, decode, out_of_range, unmapped_value) and logged once until the device
answers a whole poll cleanly again.

A change the journal refuses waits in its device's backlog and is handed over again in
the background (`drivers.handover.Backlog`): the poll that saw it is the change's only
source. The device's later changes wait behind it, in order, while every device of the bus
is polled on, so a journal that cannot write marks none of them offline.

Scheduling runs on the injected clock; the silence between frames and the answer timeout
are physical and run on the event loop's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.handover import Backlog
from drivers.intake import Intake
from drivers.modbus.device import Due, PolledDevice, Value
from drivers.modbus.frames import classify_rtu, classify_tcp
from drivers.modbus.planner import Block, plan_map
from drivers.modbus.register_map import ModbusMap
from drivers.modbus.rtu_framer import AnswerFramer
from drivers.modbus.values import decode_point
from drivers.profile import Profile
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import ModbusBusConfig, ModbusDevice
from gateway.core.counters import Counters

log = logging.getLogger(__name__)

_FUNCTION_CODE: Final = {"coils": 1, "discrete_inputs": 2, "holding_registers": 3,
                         "input_registers": 4}
_EXCEPTIONS: Final = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                      4: "device failure", 5: "acknowledge", 6: "device busy",
                      10: "gateway path unavailable", 11: "gateway target did not respond"}
# pymodbus closes the port after this many unanswered requests in a row; one dead device
# must never take the line down for the others, and reconnecting is this driver's job
_NEVER: Final = 2**62
# bytes the RTU framer dropped that are kept to name a bad answer: one frame at most
_SHOWN: Final = 256


class DeviceFaultError(Exception):
    """A device gave no usable answer to one request."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BusDownError(Exception):
    """The serial port or TCP connection itself is gone."""


class ModbusBusDriver:
    """Polls every device of one bus; run() owns the bus until it is cancelled."""

    def __init__(self, bus: ModbusBusConfig, devices: list[tuple[ModbusDevice, Profile]],
                 clock: Clock, counters: Counters) -> None:
        self._bus = bus
        self._clock = clock
        self._counters = counters
        self._devices: list[PolledDevice] = []
        units: dict[int, str] = {}
        for device, profile in devices:
            mapping = profile.mapping
            if device.modbus.bus != bus.id:
                raise ValueError(f"device {device.id} is on bus {device.modbus.bus}, "
                                 f"not {bus.id}")
            if not isinstance(mapping, ModbusMap):
                raise ValueError(f"profile {profile.name} of device {device.id} is not a "
                                 "modbus profile")
            if device.modbus.unit in units:
                raise ValueError(f"devices {units[device.modbus.unit]} and {device.id} share "
                                 f"unit {device.modbus.unit} on bus {bus.id}")
            units[device.modbus.unit] = device.id
            settings = device.modbus
            self._devices.append(PolledDevice(
                device_id=device.id, unit=settings.unit, kind=device.kind, mapping=mapping,
                plan=plan_map(mapping), poll_s=settings.poll_s,
                alarm_poll_s=settings.alarm_poll_s,
                backoff=Backoff(min(settings.alarm_poll_s, bus.retry_max_s), bus.retry_max_s)))
        if not self._devices:
            raise ValueError(f"bus {bus.id} has no devices")
        self._rx = b""  # what arrived for the request in flight, to name a bad answer
        self._dropped = b""  # its first bytes the RTU framer dropped before that
        self._quiet_until = 0.0  # loop time before which the line must stay silent
        self._silence_s = _silence_s(bus)
        self._backlogs: dict[str, Backlog] = {}

    @property
    def name(self) -> str:
        return f"modbus[{self._bus.id}]"

    def waiting(self) -> dict[str, int]:
        """Per device: its changes the journal refused and not yet taken."""
        return {d.id: self._backlogs[d.id].waiting if d.id in self._backlogs else 0
                for d in self._devices}

    async def run(self, intake: Intake) -> None:
        client = self._client()
        client.set_max_no_responses(_NEVER)
        self._backlogs = {d.id: Backlog(intake, self._clock, self._counters)
                          for d in self._devices}
        try:
            async with contextlib.AsyncExitStack() as backlogs:
                for backlog in self._backlogs.values():
                    await backlogs.enter_async_context(backlog)
                await self._keep_open(client, intake)
        finally:
            client.close()

    async def _keep_open(self, client: AsyncModbusSerialClient | AsyncModbusTcpClient,
                         intake: Intake) -> None:
        backoff = Backoff(min(1.0, self._bus.retry_max_s), self._bus.retry_max_s)
        down = False
        while True:
            if not await client.connect():
                if not down:
                    log.warning("bus %s: cannot open %s; retrying", self._bus.id,
                                self._where())
                down = True
                self._counters.inc("modbus_link_down", bus=self._bus.id)
                await self._clock.sleep(backoff.next_delay())
                continue
            if down:
                log.info("bus %s: %s is open again", self._bus.id, self._where())
            down = False
            backoff.reset()
            try:
                await self._serve(client, intake)
            except BusDownError as exc:
                log.warning("bus %s: %s lost (%s); reconnecting", self._bus.id,
                            self._where(), exc)
                down = True
                self._counters.inc("modbus_link_down", bus=self._bus.id)
                client.close()
                await self._clock.sleep(backoff.next_delay())

    async def _serve(self, client: AsyncModbusSerialClient | AsyncModbusTcpClient,
                     intake: Intake) -> None:
        while True:
            for device in self._devices:
                due = device.due(self._clock.monotonic())
                if due is not None:
                    await self._poll(client, device, due, intake)
            wait = min(d.next_due for d in self._devices) - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)

    async def _poll(self, client: AsyncModbusSerialClient | AsyncModbusTcpClient,
                    device: PolledDevice, due: Due, intake: Intake) -> None:
        values: dict[str, Value] = {}
        problems: list[tuple[str, str]] = []
        fault: DeviceFaultError | None = None
        for block in due.blocks:
            try:
                data = await self._read(client, device.unit, block)
            except DeviceFaultError as exc:
                fault = exc
                break  # the rest would only cost more timeouts
            for name in block.points:
                try:
                    values[name] = decode_point(device.mapping.points[name], block.address, data)
                except ValueError as exc:
                    problems.append(("decode", f"point {name}: {exc}"))
        answered = fault is None or bool(values) or bool(problems)
        if answered:
            intake.seen(device.id)
        outcome = device.interpret(values, self._clock.now_ms())
        problems += outcome.problems
        for reason, detail in problems:
            self._counters.reject(log, device.id, reason, detail)
        if outcome.reading is not None:
            intake.reading(outcome.reading)
        backlog = self._backlogs[device.id]
        for event in outcome.events:
            # the change is in this driver's memory alone: the next poll no longer sees it
            await backlog.give(event)
        self._counters.inc("modbus_polls", bus=self._bus.id, device=device.id)
        now = self._clock.monotonic()
        if fault is not None:
            self._counters.reject(log, device.id, fault.reason, fault.detail)
            device.failed(now)
            return
        device.answered(now, due)
        if not problems:
            self._counters.recovered(device.id)

    async def _read(self, client: AsyncModbusSerialClient | AsyncModbusTcpClient, unit: int,
                     block: Block) -> list[int] | list[bool]:
        loop = asyncio.get_running_loop()
        # the bus's own silence between frames: physical time, not the scheduling clock
        gap = self._quiet_until - loop.time()
        if gap > 0:
            await asyncio.sleep(gap)
        read: Callable[..., Any] = {
            "coils": client.read_coils, "discrete_inputs": client.read_discrete_inputs,
            "holding_registers": client.read_holding_registers,
            "input_registers": client.read_input_registers,
        }[block.function]
        self._counters.inc("modbus_requests", bus=self._bus.id, unit=str(unit))
        try:
            response: ModbusPDU = await read(block.address, count=block.count, device_id=unit)
        except ModbusIOException as exc:
            _propagate_cancellation()
            if not client.connected:
                raise BusDownError(str(exc)) from exc
            raise self._no_answer(unit, block) from exc
        except ConnectionException as exc:
            _propagate_cancellation()  # a stop while the line is torn down is still a stop
            raise BusDownError(str(exc)) from exc
        finally:
            self._quiet_until = loop.time() + self._silence_s
        # Python 3.11's wait_for, inside pymodbus, returns an answer that arrived with the
        # stop and drops the stop: the task still says it is being cancelled
        _propagate_cancellation()
        where = f"{block.function} {block.address}+{block.count}"
        if response.isError():
            code = response.exception_code
            raise DeviceFaultError("exception_code", f"exception {code} "
                              f"({_EXCEPTIONS.get(code, 'unknown')}) to a read of {where}")
        data: list[int] | list[bool] = (response.bits[:block.count]
                                        if block.function in ("coils", "discrete_inputs")
                                        else response.registers)
        if len(data) != block.count:
            raise DeviceFaultError("decode", f"{len(data)} values for a read of {where}")
        return data

    def _no_answer(self, unit: int, block: Block) -> DeviceFaultError:
        if self._bus.type == "rtu":
            reason, detail = classify_rtu(self._dropped + self._rx, unit,
                                          _FUNCTION_CODE[block.function])
        else:
            reason, detail = classify_tcp(self._rx, unit)
        if reason == "timeout":
            detail = f"no answer within {self._bus.timeout_s} s"
        return DeviceFaultError(reason, f"{detail} (read of {block.function} "
                                   f"{block.address}+{block.count})")

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # pymodbus passes what it has buffered for the request in flight
        self._rx = b"" if sending else data
        if sending:
            self._dropped = b""
        return data

    def _noise(self, dropped: bytes) -> None:
        if len(self._dropped) < _SHOWN:
            self._dropped += dropped[:_SHOWN - len(self._dropped)]
        self._counters.inc("modbus_noise_bytes", len(dropped), bus=self._bus.id)
        self._counters.log_once(log, ("modbus_noise", self._bus.id),
                                "bus %s: bytes that are no answer to a request on %s "
                                "(noise on the line?) are dropped; later ones are only counted",
                                self._bus.id, self._where())

    def _client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        bus = self._bus
        # retries=0: one timeout per request, retries are this driver's; reconnect_delay=0:
        # no reconnect task inside pymodbus, this task owns the bus
        if bus.type == "rtu":
            assert bus.port is not None
            serial = AsyncModbusSerialClient(
                bus.port, baudrate=bus.baudrate, bytesize=bus.bytesize, parity=bus.parity,
                stopbits=bus.stopbits, timeout=bus.timeout_s, retries=0, reconnect_delay=0,
                name=self.name, trace_packet=self._trace)
            # pymodbus's own RTU framer costs cubic time in the noise it has buffered, on
            # the event loop that every other transport shares
            serial.ctx.framer = AnswerFramer(serial.ctx.framer.decoder, self._noise)
            return serial
        assert bus.host is not None
        return AsyncModbusTcpClient(
            bus.host, port=bus.tcp_port, timeout=bus.timeout_s, retries=0, reconnect_delay=0,
            name=self.name, trace_packet=self._trace)

    def _where(self) -> str:
        bus = self._bus
        return (bus.port or "?") if bus.type == "rtu" else f"{bus.host}:{bus.tcp_port}"


def _silence_s(bus: ModbusBusConfig) -> float:
    if bus.type == "tcp":
        return bus.inter_frame_ms / 1000
    # RTU frames end with 3.5 characters of silence; above 19200 baud the spec fixes it
    # at 1.75 ms. A configured gap shorter than that would run frames together.
    char_s = (1 + bus.bytesize + (bus.parity != "N") + bus.stopbits) / bus.baudrate
    return max(bus.inter_frame_ms / 1000, 3.5 * char_s if bus.baudrate <= 19_200 else 0.00175)


def _propagate_cancellation() -> None:
    # pymodbus turns a cancelled request into ModbusIOException: turn it back
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
