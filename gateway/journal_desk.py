"""The journal's desk: operator tools read the journal through the running gateway.

The gateway holds its journal exclusively (see `Journal`), so a report run beside it
(`scgw report shift`, `scgw sharing report`) cannot open the database. The gateway answers
such reads on a Unix socket beside its status file (`gateway.sock`, mode 0660), from its
own connection on the journal's thread. When no gateway answers there, the tools open the
database themselves, read-only. Only the reads named here are answered.

One exchange per connection: the tool sends one JSON request line, the gateway sends one
JSON answer and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from gateway.core.config import JournalConfig
from gateway.core.counters import Counters
from gateway.journal import SHARED_COLUMNS, Journal, SharedRow
from gateway.status_report import status_path

log = logging.getLogger(__name__)

T = TypeVar("T")

SOCKET_NAME = "gateway.sock"
ASK_TIMEOUT_S = 30.0  # a report over a year of alerts takes a while on a Pi
MAX_REQUEST = 4096
FILE_WAIT_S = 1.0  # a gateway starting or stopping holds the file for a moment
# sun_path holds 108 bytes: a longer path is reached through the directory's descriptor
SUN_PATH_MAX = 100


class States(msgspec.Struct, tag="states"):
    """Every state row whose key starts with `prefix`, in key order."""

    prefix: str


class Shared(msgspec.Struct, tag="shared"):
    """The audit's rows confirmed at or after `since_ms`, oldest first."""

    since_ms: int


Request = States | Shared


class Answer(msgspec.Struct):
    states: list[bytes] = msgspec.field(default_factory=list)
    shared: list[SharedRow] = msgspec.field(default_factory=list)
    error: str = ""


class JournalUnreadableError(Exception):
    """The journal can be read neither through the gateway nor from its file."""


def socket_path(journal: JournalConfig) -> Path:
    """Where the running gateway answers: beside its status file."""
    return status_path(journal).with_name(SOCKET_NAME)


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """A name for `path` that fits in a socket address."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# -- in the gateway --------------------------------------------------------------------


class JournalDesk:
    """Answers the tools' reads of `journal` on the socket at `path` while it runs."""

    def __init__(self, journal: Journal, path: Path, counters: Counters) -> None:
        self._journal = journal
        self._path = path
        self.counters = counters  # journal_reads{result}: answered, refused
        self.ready = asyncio.Event()  # answering

    async def run(self) -> None:
        sock = await asyncio.to_thread(self._bind)
        server = await asyncio.start_unix_server(self._serve, sock=sock)
        self.ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            self.ready.clear()
            with contextlib.suppress(OSError):
                self._path.unlink()

    def _bind(self) -> socket.socket:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # a socket left by a gateway that was killed: this gateway holds the journal now
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _reachable(self._path) as name:
                sock.bind(name)
            os.chmod(self._path, 0o660)  # the service's group: operators
        except OSError:
            sock.close()
            raise
        return sock

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader)
            writer.write(msgspec.json.encode(answer))
            await writer.drain()
        except (ConnectionError, TimeoutError) as exc:
            log.info("a journal read was not answered: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Answer:
        try:
            async with asyncio.timeout(ASK_TIMEOUT_S):
                line = await reader.readline()
            if len(line) > MAX_REQUEST:
                raise ValueError(f"request longer than {MAX_REQUEST} bytes")
            request = msgspec.json.decode(line, type=Request)
        except (ValueError, msgspec.MsgspecError) as exc:
            self.counters.inc("journal_reads", result="refused")
            self.counters.log_once(log, ("journal_desk", "refused"),
                                    "a request on %s was refused (%s); later ones are only "
                                    "counted (journal_reads{result=refused})", self._path, exc)
            return Answer(error=f"not a journal read: {exc}")
        self.counters.inc("journal_reads", result="answered")
        if isinstance(request, States):
            found = await self._journal.read_states(request.prefix)
            return Answer(states=[found[key] for key in sorted(found)])
        rows = await self._journal.read_shared(request.since_ms)
        return Answer(shared=sorted(rows, key=lambda r: (r.at, r.seq)))


# -- in the tools ----------------------------------------------------------------------


def _ask(path: Path, request: Request) -> Answer | None:
    """The gateway's answer, or None when no gateway listens at `path` (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ASK_TIMEOUT_S)
        try:
            with _reachable(path) as name:
                sock.connect(name)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # no gateway running: the tools read the file
        sock.sendall(msgspec.json.encode(request) + b"\n")
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    answer = msgspec.json.decode(b"".join(chunks), type=Answer)
    if answer.error:
        raise JournalUnreadableError(f"the gateway at {path} refused the read: {answer.error}")
    return answer


def _states_from(prefix: str) -> Callable[[sqlite3.Connection], list[bytes]]:
    def read(db: sqlite3.Connection) -> list[bytes]:
        rows = db.execute("SELECT value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                          (len(prefix), prefix)).fetchall()
        return [bytes(value) for (value,) in rows]
    return read


def _shared_from(since_ms: int) -> Callable[[sqlite3.Connection], list[SharedRow]]:
    def read(db: sqlite3.Connection) -> list[SharedRow]:
        if db.execute("SELECT 1 FROM sqlite_schema WHERE name = 'shared'").fetchone() is None:
            return []  # a journal from before the audit
        rows = db.execute(f"SELECT {SHARED_COLUMNS} FROM shared WHERE at >= ? "
                          "ORDER BY at, seq", (since_ms,)).fetchall()
        return [SharedRow(*row) for row in rows]
    return read


def _read(journal: JournalConfig, request: Request,
          from_file: Callable[[sqlite3.Connection], T]) -> Answer | T:
    """The gateway's answer to `request`; with no gateway running, `from_file` on the
    database opened read-only."""
    path = socket_path(journal)
    try:
        answer = _ask(path, request)
    except (OSError, msgspec.MsgspecError) as exc:
        raise JournalUnreadableError(f"the gateway at {path} did not answer: {exc}") from exc
    if answer is not None:
        return answer
    try:
        db = sqlite3.connect(f"{journal.path.resolve().as_uri()}?mode=ro", uri=True,
                             timeout=FILE_WAIT_S)
        try:
            return from_file(db)
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise JournalUnreadableError(
                f"journal {journal.path} is held by a running gateway, and none answers at "
                f"{path}") from exc
        raise JournalUnreadableError(f"journal {journal.path}: {exc}") from exc


def read_states(journal: JournalConfig, prefix: str) -> list[bytes]:
    """The state values whose key starts with `prefix`, in key order (blocking)."""
    if not journal.path.exists() and not socket_path(journal).exists():
        return []
    got = _read(journal, States(prefix), _states_from(prefix))
    return got.states if isinstance(got, Answer) else got


def read_shared(journal: JournalConfig, since_ms: int) -> list[SharedRow]:
    """The audit's rows confirmed at or after `since_ms`, oldest first (blocking)."""
    if not journal.path.exists() and not socket_path(journal).exists():
        return []
    got = _read(journal, Shared(since_ms), _shared_from(since_ms))
    return got.shared if isinstance(got, Answer) else got
