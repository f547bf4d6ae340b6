"""An RS-485 line of simulated Modbus RTU units, reached through a pty pair.

The gateway opens `port` (the pty's slave side) like a USB RS-485 adapter; this side reads
requests from the master side, answers for the units it hosts and stays silent for any
other unit, as a real multi-drop line does. RTU framing and CRC are done here so that
faults can be put on the wire; the requests themselves are pymodbus PDUs run against each
unit's pymodbus datastore.

With `faithful_timing`, every frame takes as long as it would on the wire at the given
baud rate, and a unit answers only after the 3.5-character silence that ends a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Iterable
from types import TracebackType
from typing import Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU

from drivers.modbus.frames import crc_ok, rtu_frame
from simulators.modbus_device import SimulatedDevice

log = logging.getLogger(__name__)

# longest frame the line accepts before the buffer is considered noise
_MAX_FRAME = 256


class RtuBusSimulator:
    """Many units on one simulated RS-485 line; use as `async with`."""

    def __init__(self, devices: Iterable[SimulatedDevice], *, baudrate: int = 9600,
                 bytesize: int = 8, parity: Literal["N", "E", "O"] = "N", stopbits: int = 1,
                 faithful_timing: bool = False) -> None:
        self.units: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.unit in self.units:
                raise ValueError(f"two devices with unit id {device.unit}")
            self.units[device.unit] = device
        # start bit, data bits, parity bit, stop bits
        self._char_s = (1 + bytesize + (parity != "N") + stopbits) / baudrate
        self.faithful_timing = faithful_timing
        self._decoder = DecodePDU(True)
        self._master = -1
        self._slave = -1
        self._port = ""
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._answering: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> str:
        """The serial device path the gateway opens."""
        if not self._port:
            raise RuntimeError("the line is not up: use `async with`")
        return self._port

    def frame_s(self, chars: float) -> float:
        """Seconds `chars` characters take on the wire."""
        return chars * self._char_s

    async def __aenter__(self) -> Self:
        self._master, self._slave = os.openpty()
        # the slave stays open here too: the master would read EIO while no one has it open
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._port = os.ttyname(self._slave)
        asyncio.get_running_loop().add_reader(self._master, self._readable)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        loop.remove_writer(self._master)
        for task in list(self._answering):
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
        os.close(self._master)
        os.close(self._slave)

    def noise(self, data: bytes) -> None:
        """Put `data` on the line towards the gateway, as interference on the cable would."""
        self._send(data)

    # -- receiving --------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        self._buffer += data
        for frame in self._frames():
            task = asyncio.create_task(self._answer(frame),
                                       name=f"sim.rtu[{self._port}].unit{frame[0]}")
            self._answering.add(task)
            task.add_done_callback(self._answered)

    def _frames(self) -> list[bytes]:
        # complete requests at the front of the buffer; noise is skipped byte by byte
        out = []
        while len(self._buffer) >= 4:
            length = _request_length(self._buffer)
            if length is None:
                if len(self._buffer) > _MAX_FRAME or self._buffer[1] not in _LENGTHS:
                    del self._buffer[0]
                    continue
                break
            if len(self._buffer) < length:
                break
            frame = bytes(self._buffer[:length])
            if crc_ok(frame):
                out.append(frame)
                del self._buffer[:length]
            else:
                del self._buffer[0]
        return out

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated unit failed", exc_info=task.exception())

    # -- answering --------------------------------------------------------------------

    async def _answer(self, frame: bytes) -> None:
        unit = frame[0]
        device = self.units.get(unit)
        if device is None:
            return
        if self.faithful_timing:
            await asyncio.sleep(self.frame_s(len(frame)) + 3.5 * self._char_s)
        request = self._decoder.decode(frame[1:-2])
        response: ModbusPDU
        if request is None:
            response = ExceptionResponse(frame[1], ExcCodes.ILLEGAL_FUNCTION)
        else:
            request.dev_id = unit
            try:
                response = await request.update_datastore(device)
            except NoSuchIdException:
                return
        adu = device.mangle(rtu_frame(unit, bytes([response.function_code]) + response.encode()),
                            "rtu")
        if self.faithful_timing:
            await asyncio.sleep(self.frame_s(len(adu)))
        self._send(adu)

    def _send(self, data: bytes) -> None:
        self._outgoing += data
        self._writable()

    def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            written = os.write(self._master, self._outgoing)
        except (BlockingIOError, InterruptedError):
            written = 0
        del self._outgoing[:written]
        if self._outgoing:
            loop.add_writer(self._master, self._writable)
        else:
            loop.remove_writer(self._master)


# request length by function code: reads and single writes are fixed, multiple writes
# carry a byte count at offset 6
_LENGTHS = {1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 15: -1, 16: -1}


def _request_length(buffer: bytearray) -> int | None:
    length = _LENGTHS.get(buffer[1])
    if length is None:
        return None
    if length > 0:
        return length
    return 9 + buffer[6] if len(buffer) >= 7 else None
