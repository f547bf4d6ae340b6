"""The journal's receipts in memory: a fixed table per MQTT session, whatever the load."""

from __future__ import annotations

import hashlib
import tracemalloc

from gateway.journal import Receipt
from gateway.receipt_memory import PACKET_IDS, ReceiptMemory

T0 = 1_700_000_000_000


def _digest(n: int) -> bytes:
    return hashlib.blake2b(str(n).encode(), digest_size=16).digest()


def test_a_packet_id_keeps_its_newest_receipt() -> None:
    memory = ReceiptMemory()
    assert memory.get("mqtt:7") is None
    memory.put(Receipt("mqtt:7", _digest(1), T0))
    memory.put(Receipt("mqtt:7", _digest(2), T0 + 5))
    assert memory.get("mqtt:7") == Receipt("mqtt:7", _digest(2), T0 + 5)
    assert memory.get("bulk:7") is None  # another session's packet ids are its own


def test_other_keys_and_digests_are_kept_and_dropped_by_age() -> None:
    memory = ReceiptMemory()
    memory.put(Receipt("onenet:abc", _digest(1), T0))
    memory.put(Receipt("mqtt:70000", _digest(2), T0))  # not a packet id
    memory.put(Receipt("mqtt:3", b"short", T0))
    assert memory.get("mqtt:3") == Receipt("mqtt:3", b"short", T0)
    memory.put(Receipt("mqtt:3", _digest(3), T0 + 1))  # now a slot's: the dict's goes
    assert memory.get("mqtt:3") == Receipt("mqtt:3", _digest(3), T0 + 1)
    memory.drop_older(T0 + 1)
    assert memory.get("onenet:abc") is None
    assert memory.get("mqtt:70000") is None
    assert memory.get("mqtt:3") is not None  # a slot is written over, not dropped


def test_forgetting_a_session_forgets_its_receipts_alone() -> None:
    memory = ReceiptMemory()
    for key in ("mqtt:1", "bulk:1", "mqtt:x"):
        memory.put(Receipt(key, _digest(1), T0))
    memory.forget("mqtt:")
    assert memory.get("mqtt:1") is None
    assert memory.get("mqtt:x") is None
    assert memory.get("bulk:1") is not None


def test_every_packet_id_of_a_session_costs_under_two_mib() -> None:
    tracemalloc.start()
    try:
        memory = ReceiptMemory()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3 * PACKET_IDS):  # the packet ids come round three times
            memory.put(Receipt(f"mqtt:{n % (PACKET_IDS - 1) + 1}", _digest(n), T0 + n))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2 * 2**20, held
    last = 3 * (PACKET_IDS - 1)  # the last n that came as packet id 1
    assert memory.get("mqtt:1") == Receipt("mqtt:1", _digest(last), T0 + last)
