"""The simulated transmission device: it sends again until confirmed, as configured, and
answers the centre's clock synchronisation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from drivers.gb26875.downstream import ClockSync
from drivers.gb26875.frame import Command, Frame, TimeTag
from drivers.gb26875.stream import FrameStream
from drivers.gb26875.units import Unit, UnitType
from simulators.gb26875_device import TransmissionDevice
from tests.helpers import eventually


class Centre:
    """A monitoring centre that keeps what it receives and answers as told."""

    def __init__(self) -> None:
        self.received: list[Frame] = []
        self.answer: Command | None = None  # None: stay silent
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        stream = FrameStream()
        while data := await reader.read(4096):
            for frame in stream.feed(data):
                assert isinstance(frame, Frame)
                self.received.append(frame)
                if self.answer is not None and frame.command == Command.SEND:
                    writer.write(frame.answer(self.answer, frame.time).encode())


@contextlib.asynccontextmanager
async def centre() -> AsyncIterator[Centre]:
    c = Centre()
    server = await asyncio.start_server(c.serve, "127.0.0.1", 0)
    c.port = server.sockets[0].getsockname()[1]
    async with server:
        yield c


async def test_a_report_is_sent_again_with_its_serial_number_until_the_retries_run_out(
        ) -> None:
    async with centre() as c, TransmissionDevice("127.0.0.1", c.port, 889,
                                                 confirm_timeout_s=0.1, retries=2) as device:
        delivery = await device.fire("1-3-017")
        assert (delivery.confirmed, delivery.sends) == (False, 3)
        assert len({f.serial for f in c.received}) == 1
        assert len({f.data for f in c.received}) == 1
        c.answer = Command.CONFIRM
        device.confirm_timeout_s = 10
        delivery = await device.fire("1-3-017")
        assert (delivery.confirmed, delivery.sends) == (True, 1)
        assert c.received[-1].serial == c.received[0].serial + 1


async def test_a_deny_makes_the_device_send_again() -> None:
    async with centre() as c, TransmissionDevice("127.0.0.1", c.port, 889,
                                                 confirm_timeout_s=10, retries=1) as device:
        c.answer = Command.DENY
        delivery = await device.heartbeat()
        assert (delivery.confirmed, delivery.sends, delivery.denied) == (False, 2, 2)


async def test_the_device_confirms_a_clock_synchronisation_and_sets_its_clock() -> None:
    async with centre() as c, TransmissionDevice("127.0.0.1", c.port, 889) as device:
        c.answer = Command.CONFIRM
        await device.heartbeat()  # the centre now knows the connection
        assert c.writer is not None
        target = datetime.now().replace(microsecond=0) + timedelta(hours=3)
        sync = Frame(serial=7, command=Command.CONTROL, source=1, destination=889,
                     time=TimeTag.of(datetime.now()),
                     data=Unit(UnitType.SYNC_CLOCK, (ClockSync(TimeTag.of(target)),)).encode())
        before = len(c.received)
        c.writer.write(sync.encode())
        await eventually(lambda: len(c.received) > before, what="the answer to the sync")
        answer = c.received[-1]
        assert (answer.command, answer.serial, answer.destination) == (Command.CONFIRM, 7, 1)
        assert device.syncs == 1
        now = device.now().isoformat()
        assert now is not None
        assert abs((datetime.fromisoformat(now) - target).total_seconds()) < 5
