"""What drivers and rules see of the journal: its records in order, the receipts of the
messages they came in, and the calls that read and commit them.

`gateway.journal.Journal` is the one implementation (SQLite in WAL mode); drivers and
rules name these types instead, so that they depend on the kernel, not on the running
gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from gateway.core.model import Record


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a source said, journalled with the records it became (`at`: epoch ms).

    `key` names the message at its source (an MQTT packet id); `digest` is its content.
    A message given again with the same key and digest is the same message.
    """

    key: str
    digest: bytes
    at: int


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    record: Record
    body: bytes = b""  # the record as journalled (gateway.core.model.encode); b"": not at hand


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read for a consumer; `upto` is the last sequence number looked at."""

    entries: list[Entry]
    upto: int


class ReceiptBook(Protocol):
    """The receipts of the messages a source gave, to recognise one given again."""

    def receipt(self, key: str) -> Receipt | None:
        """The receipt last journalled (or noted) under `key`."""
        ...

    def note(self, receipt: Receipt) -> None:
        """Keep `receipt` in memory only: for messages that left nothing in the journal."""
        ...

    async def forget_receipts(self, prefix: str) -> None:
        """Forget every receipt whose key starts with `prefix`, in memory and on disk."""
        ...


class LineFront(Protocol):
    """The journal's next commit, held for one caller."""

    def commit(self, records: Sequence[Record], *, message: int, cursor: tuple[str, int],
               state: dict[str, bytes | None], receipt: Receipt | None = None,
               also: Sequence[asyncio.Future[list[int]]] = ()) -> asyncio.Future[list[int]]:
        """Queue `records` as the next commit, durably; the cursor moves past them too when
        nothing came between. `receipt` goes with the first `message` records."""
        ...


class RecordLog(Protocol):
    """A consumer's view of the journal: read after its cursor, commit what it made."""

    def front_of_line(self) -> AbstractAsyncContextManager[LineFront]:
        """Hold the next commit for the caller, once no commit is under way."""
        ...

    def check_room(self, records: Sequence[Record]) -> None:
        """Raise JournalFullError when `records` would be refused for want of room."""
        ...

    @property
    def last_seq(self) -> int: ...

    def listen(self) -> asyncio.Event:
        """An event set after every commit that appended records."""
        ...

    async def cursor(self, consumer: str) -> int: ...

    async def read_after(self, seq: int, limit: int = 500) -> Batch:
        """Records after sequence number `seq`, oldest first."""
        ...

    async def read_states(self, prefix: str) -> dict[str, bytes]:
        """Every state key starting with `prefix`, with its value."""
        ...

    async def commit(
        self,
        records: Sequence[Record] = (),
        *,
        cursor: tuple[str, int] | None = None,
        state: dict[str, bytes | None] | None = None,
        receipt: Receipt | None = None,
        durable: bool | None = None,
    ) -> list[int]:
        """Atomically append `records`, move one consumer's cursor and update state keys;
        `durable` None: with an fsync as the records' class needs."""
        ...
