"""Finding a Modbus RTU answer in what the line delivered, with bounded work per byte.

pymodbus's RTU framer tries every offset of its whole receive buffer and, at each, checks
the CRC at every length up to the end of the buffer; noise stays in that buffer until the
next request. A few kilobytes of noise on an RS-485 line so cost seconds to minutes of CPU
on the event loop, and every other transport of the gateway with it.

This framer looks only for what the driver asks for: an answer to a read (function 1 to 4)
or an exception, from the unit the request went to. Each offset that could start one is
checked once, at the one length its header announces (at most 260 bytes). Bytes that can
no longer start such an answer are dropped from the buffer at once and reported as noise,
so the buffer never holds more than one frame's worth of undecided bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU

from drivers.modbus.frames import crc_ok, rtu_answer_length

_READS: Final = frozenset({1, 2, 3, 4})
_MIN_FRAME: Final = 4  # unit, function, CRC


def find_answer(data: bytes, unit: int) -> tuple[int, tuple[int, int] | None]:
    """(bytes at the front that cannot start an answer, (start, end) of the first answer).

    `unit` 0 means no request is in flight: any unit's answer is looked for.
    """
    size = len(data)
    wanted = bytes([unit])
    undecided: int | None = None  # first offset that may still become an answer
    at = 0
    while at <= size - _MIN_FRAME:
        if unit:
            at = data.find(wanted, at)
            if at < 0:
                at = size
                break
            if at > size - _MIN_FRAME:
                break
        function = data[at + 1]
        if function & 0x7F in _READS:
            length = rtu_answer_length(data[at:at + 3])
            if length is None or at + length > size:
                if undecided is None:
                    undecided = at
            elif crc_ok(data[at:at + length]):
                return at, (at, at + length)
        at += 1
    # `at` is the first offset not looked at: too close to the end, or (for a unit) the end
    return (at if undecided is None else undecided), None


class AnswerFramer(FramerRTU):
    """An RTU client framer whose search for the answer is bounded; `on_noise` gets each
    run of bytes it drops."""

    def __init__(self, decoder: DecodePDU, on_noise: Callable[[bytes], None]) -> None:
        super().__init__(decoder)
        self._on_noise = on_noise

    def handleFrame(self, data: bytes, exp_devid: int,
                    exp_tid: int) -> tuple[int, ModbusPDU | None]:
        dead, found = find_answer(data, exp_devid)
        if dead:
            self._on_noise(data[:dead])
        if found is None:
            return dead, None
        start, end = found
        pdu = self.decoder.decode(data[start + 1:end - 2])
        if pdu is None:  # a well-formed frame whose content does not decode
            self._on_noise(data[start:end])
            return end, None
        pdu.dev_id = data[start]
        pdu.transaction_id = 0
        return end, pdu
