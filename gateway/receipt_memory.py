"""The receipts the journal keeps in memory, to recognise a message given again.

Most are an MQTT session's: keyed by the broker's packet id (1 to 65,535), one per QoS 1
message, readings included (those are kept in memory only). Held as Receipt objects in a
dict they cost some 250 bytes each, and a session's packet ids all come into use within
minutes at a compound's load: 16 MiB a session. Here each session's receipts sit in one
table of fixed slots, a slot per packet id (24 bytes: the 16-byte digest and the time), so
a session's receipts take 1.5 MiB whatever the load. Any other key (a platform's message
id, a digest of another size) is kept in a dict, as before.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

from gateway.core.journaling import Receipt

PACKET_IDS = 65_536  # an MQTT packet id is 16 bits
DIGEST = 16
_SLOT = struct.Struct(f"<{DIGEST}sq")  # digest, epoch ms (0: empty)
_PACKET_KEY = re.compile(r"([a-z][a-z0-9_-]*:)(\d{1,5})")


class ReceiptMemory:
    """Receipts by key: the newest under each key."""

    def __init__(self) -> None:
        self._tables: dict[str, bytearray] = {}  # prefix -> a slot per packet id
        self._others: dict[str, Receipt] = {}

    def get(self, key: str) -> Receipt | None:
        slot = _slot(key)
        other = self._others.get(key)
        if slot is None or other is not None:
            return other
        table = self._tables.get(slot[0])
        if table is None:
            return None
        digest, at = _SLOT.unpack_from(table, slot[1] * _SLOT.size)
        return Receipt(key, digest, at) if at else None

    def put(self, receipt: Receipt) -> None:
        slot = _slot(receipt.key)
        if slot is None or len(receipt.digest) != DIGEST or receipt.at <= 0:
            self._others[receipt.key] = receipt
            if slot is not None and slot[0] in self._tables:  # the slot's is older
                _SLOT.pack_into(self._tables[slot[0]], slot[1] * _SLOT.size, bytes(DIGEST), 0)
            return
        prefix, mid = slot
        table = self._tables.get(prefix)
        if table is None:
            table = self._tables[prefix] = bytearray(PACKET_IDS * _SLOT.size)
        _SLOT.pack_into(table, mid * _SLOT.size, receipt.digest, receipt.at)
        self._others.pop(receipt.key, None)  # a digest of another size kept before

    def load(self, receipts: Iterable[Receipt]) -> None:
        for receipt in receipts:
            self.put(receipt)

    def drop_older(self, before: int) -> None:
        """Forget receipts older than `before` (epoch ms). A packet id's slot is left to
        be written over: whoever reads it compares its time with the window anyway."""
        for key in [k for k, r in self._others.items() if r.at < before]:
            del self._others[key]

    def forget(self, prefix: str) -> None:
        """Forget every receipt whose key starts with `prefix`."""
        for table_prefix in [p for p in self._tables if p.startswith(prefix)]:
            del self._tables[table_prefix]
        for key in [k for k in self._others if k.startswith(prefix)]:
            del self._others[key]


def _slot(key: str) -> tuple[str, int] | None:
    match = _PACKET_KEY.fullmatch(key)
    if match is None:
        return None
    mid = int(match.group(2))
    return (match.group(1), mid) if mid < PACKET_IDS else None
