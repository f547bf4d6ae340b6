"""A user information transmission device speaking GB/T 26875.3-2011 to a monitoring centre
(the gateway), byte for byte.

It reports state changes of its fire panels' components and of itself in send frames, over
TCP or (`udp=True`) UDP, and sends the same frame again (same serial number) when no
confirm comes within `confirm_timeout_s`, up to `retries` times, reconnecting when a TCP
connection is lost. It
confirms the centre's clock synchronisation and sets its clock; `lose_confirms` makes it
ignore confirms as if they were lost on the wire.

    python -m simulators.gb26875_device 127.0.0.1 9030 889 --fire 1-3-017
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import cast

from drivers.gb26875.downstream import ClockSync
from drivers.gb26875.facility import ComponentStatus
from drivers.gb26875.frame import Command, Frame, TimeTag
from drivers.gb26875.objects import ComponentAddress, UnitError
from drivers.gb26875.states import ComponentState
from drivers.gb26875.stream import FrameStream
from drivers.gb26875.transmitter import TransmitterStatus
from drivers.gb26875.units import Unit, UnitType, decode_unit

SMOKE_DETECTOR = 40  # component type: 感烟火灾探测器
FIRE_ALARM_SYSTEM = 1  # system type: 火灾报警系统


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a report went: confirmed or not, after how many sends, denied how often."""

    confirmed: bool
    sends: int
    denied: int



class TransmissionDevice:
    """Connects to `host`:`port` in `async with`; `address` is its 6-byte address."""

    def __init__(self, host: str, port: int, address: int, *, centre: int = 0,
                 confirm_timeout_s: float = 2.0, retries: int = 3,
                 reconnect_s: float = 0.2, udp: bool = False) -> None:
        self.host, self.port, self.address, self.centre = host, port, address, centre
        self.confirm_timeout_s = confirm_timeout_s
        self.retries = retries
        self.reconnect_s = reconnect_s
        self.lose_confirms = 0  # confirms still to ignore, as if lost on the wire
        self.clock_offset = timedelta(0)  # set by the centre's clock synchronisation
        self.sent: list[bytes] = []  # every frame written, in order
        self.syncs = 0
        self._serial = 0
        self._answers: dict[int, asyncio.Future[int]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._over_udp = udp
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> TransmissionDevice:
        await self._connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._disconnect()

    def now(self) -> TimeTag:
        return TimeTag.of(datetime.now() + self.clock_offset)

    # -- what it reports --------------------------------------------------------------------

    async def component(self, component: str, state: ComponentState, description: str = "",
                        component_type: int = SMOKE_DETECTOR) -> Delivery:
        """A component's state, `component` written system-zone-position (`1-3-017`)."""
        system, _, address = component.partition("-")
        return await self.report(Unit(UnitType.COMPONENT_STATUS, (ComponentStatus(
            FIRE_ALARM_SYSTEM, int(system), component_type, ComponentAddress.parse(address),
            int(state), description, self.now()),)))

    async def fire(self, component: str, description: str = "") -> Delivery:
        return await self.component(component, ComponentState.NORMAL | ComponentState.FIRE,
                                    description)

    async def restored(self, component: str) -> Delivery:
        return await self.component(component, ComponentState.NORMAL)

    async def own_state(self, state: int) -> Delivery:
        return await self.report(Unit(UnitType.TRANSMITTER_STATUS,
                                      (TransmitterStatus(state, self.now()),)))

    async def heartbeat(self) -> Delivery:
        return await self.send(b"")

    async def report(self, unit: Unit) -> Delivery:
        return await self.send(unit.encode())

    async def send(self, data: bytes) -> Delivery:
        """One send frame, sent again with its serial number until confirmed."""
        async with self._lock:
            self._serial = (self._serial + 1) & 0xFFFF
            frame = Frame(serial=self._serial, command=Command.SEND, source=self.address,
                          destination=self.centre, time=self.now(), data=data)
            return await self._deliver(frame)

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are: a truncated frame, a bad checksum, noise."""
        await self._write(data)

    # -- the connection -----------------------------------------------------------------------

    async def _deliver(self, frame: Frame) -> Delivery:
        denied = 0
        for attempt in range(1, self.retries + 2):
            answer = asyncio.get_running_loop().create_future()
            self._answers[frame.serial] = answer
            try:
                await self._write(frame.encode())
                async with asyncio.timeout(self.confirm_timeout_s):
                    command = await answer
            except (TimeoutError, ConnectionError, OSError):
                if not self._over_udp and (self._writer is None or self._writer.is_closing()):
                    await asyncio.sleep(self.reconnect_s)
                    with contextlib.suppress(ConnectionError, OSError):
                        await self._connect()
                continue
            finally:
                self._answers.pop(frame.serial, None)
            if command == Command.CONFIRM:
                return Delivery(True, attempt, denied)
            denied += 1
        return Delivery(False, self.retries + 1, denied)

    async def _write(self, data: bytes) -> None:
        if self._udp is not None:
            self.sent.append(data)
            self._udp.sendto(data)
            return
        if self._writer is None or self._writer.is_closing():
            raise ConnectionResetError("not connected")
        self.sent.append(data)
        self._writer.write(data)
        await self._writer.drain()

    async def _connect(self) -> None:
        await self._disconnect()
        if self._over_udp:
            self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(self.host, self.port))
            return
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._reader_task = asyncio.create_task(self._read(reader, self._writer),
                                                name=f"sim.gb26875[{self.address}].read")

    async def _disconnect(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._reader_task is not None:
            task, self._reader_task = self._reader_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = None

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer_all(reader, writer)
        except (ConnectionError, OSError):
            pass  # reset by the centre: the next send connects again
        finally:
            writer.close()

    async def _answer_all(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        stream = FrameStream()
        while data := await reader.read(4096):
            for frame in stream.feed(data):
                if isinstance(frame, Frame):
                    self.take(frame, writer.write)

    def take(self, frame: Frame, reply: Callable[[bytes], object]) -> None:
        """A frame from the centre: a confirm or deny for a report, or a control command."""
        if frame.command in (Command.CONFIRM, Command.DENY):
            if frame.command == Command.CONFIRM and self.lose_confirms:
                self.lose_confirms -= 1
                return
            answer = self._answers.get(frame.serial)
            if answer is not None and not answer.done():
                answer.set_result(frame.command)
        elif frame.command == Command.CONTROL:
            reply(self._control(frame).encode())

    def _control(self, frame: Frame) -> Frame:
        try:
            unit = decode_unit(frame.data)
        except UnitError:
            return frame.answer(Command.DENY, self.now())
        if unit.type == UnitType.SYNC_CLOCK and unit.objects:
            sync = unit.objects[0]
            assert isinstance(sync, ClockSync)
            iso = sync.time.isoformat()
            if iso is None:
                return frame.answer(Command.DENY, self.now())
            self.clock_offset = datetime.fromisoformat(iso) - datetime.now()
            self.syncs += 1
        return frame.answer(Command.CONFIRM, self.now())


class _Datagrams(asyncio.DatagramProtocol):
    """The centre's answers over UDP: each datagram whole frames."""

    def __init__(self, device: TransmissionDevice) -> None:
        self._device = device
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (not a DatagramTransport subclass on 3.11)
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        transport = self._transport
        for frame in FrameStream().feed(data):
            if isinstance(frame, Frame) and transport is not None:
                self._device.take(frame, transport.sendto)


async def _main(args: argparse.Namespace) -> None:
    async with TransmissionDevice(args.host, args.port, args.address,
                                  udp=args.udp) as device:
        if args.fire:
            print(await device.fire(args.fire))
        else:
            print(await device.heartbeat())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m simulators.gb26875_device")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("address", type=int, help="the transmission device's address")
    parser.add_argument("--fire", help="report a fire alarm on this component, e.g. 1-3-017")
    parser.add_argument("--udp", action="store_true", help="send over UDP instead of TCP")
    asyncio.run(_main(parser.parse_args()))
