"""The RTU answer framer: an answer is found behind noise and across chunks, and every byte
of noise is dropped and reported exactly once."""

from __future__ import annotations

import random

from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from drivers.modbus.frames import rtu_frame
from drivers.modbus.rtu_framer import AnswerFramer, find_answer

ANSWER = rtu_frame(7, bytes([3, 4, 0, 1, 0, 2]))  # unit 7: registers 1, 2


def _feed(chunks: list[bytes], unit: int) -> tuple[list[object], bytes, bytes]:
    """Feed chunks as pymodbus does: (pdus found, bytes reported as noise, buffer left)."""
    dropped = bytearray()
    framer = AnswerFramer(DecodePDU(False), dropped.extend)
    buffer = b""
    found: list[object] = []
    for chunk in chunks:
        buffer += chunk
        used, pdu = framer.handleFrame(buffer, unit, 0)
        buffer = buffer[used:]
        if pdu is not None:
            found.append(pdu)
    return found, bytes(dropped), buffer


def test_an_answer_behind_noise_split_over_chunks_is_found() -> None:
    noise = bytes(random.Random(5).randbytes(3000)).replace(b"\x07", b"\x08")
    stream = noise + ANSWER + b"\x07\x03"
    chunks = [stream[at:at + 5] for at in range(0, len(stream), 5)]
    found, dropped, left = _feed(chunks, 7)
    (pdu,) = found
    assert isinstance(pdu, ReadHoldingRegistersResponse)
    assert (pdu.dev_id, pdu.registers) == (7, [1, 2])
    assert dropped == noise
    assert left == b"\x07\x03"  # may still begin an answer


def test_answers_of_other_units_and_bad_crcs_are_noise() -> None:
    other = rtu_frame(8, bytes([3, 2, 0, 9]))
    bad = ANSWER[:-1] + bytes([ANSWER[-1] ^ 1])
    found, dropped, left = _feed([other + bad], 7)
    assert found == []
    assert dropped + left == other + bad
    assert len(left) < len(ANSWER)


def test_an_announced_length_beyond_the_buffer_keeps_only_that_frame() -> None:
    # unit 7, function 3, 200 bytes announced: undecided until 205 bytes are there
    dead, answer = find_answer(b"xyz" + bytes([7, 3, 200]) + b"\0" * 50, 7)
    assert (dead, answer) == (3, None)
    dead, answer = find_answer(b"\x07\x03\xc8" + ANSWER, 7)
    assert answer == (3, 3 + len(ANSWER))
