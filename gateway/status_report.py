"""A snapshot of the running gateway, written beside the journal for `scgw status`."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from gateway.core.clock import Clock
from gateway.core.config import JournalConfig

STATUS_FILE = "status.json"
STATUS_BLOCK = 4096
STATUS_SLACK = 16 * 1024

log = logging.getLogger(__name__)


class StatusSnapshot(msgspec.Struct, kw_only=True):
    ts: int
    site: str
    broker_connected: bool
    journal_last_seq: int
    cursors: dict[str, int]
    devices: list[dict[str, str]]
    active_alerts: int
    counters: dict[str, int]
    pid: int = 0
    alerts: list[dict[str, str | int]] = msgspec.field(default_factory=list)
    clock_synchronised: bool | None = None  # None: unknown
    # per broker session ("devices", "bulk"): messages read and not yet handled, the oldest's
    # age in seconds; and readings the rules have not evaluated yet
    intake: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    # each outside platform's state: "up", "idle" (nothing delivered yet), or "down: why"
    upstreams: dict[str, str] = msgspec.field(default_factory=dict)


BEHIND_S = 1.0  # an intake whose oldest message waited longer is behind


def intake_words(intake: dict[str, dict[str, float]]) -> str:
    """The gateway's intake in words: keeping up, or behind by how much where."""
    # a broker session whose socket holds more than it read is behind with nothing held
    behind = [(lane, f) for lane, f in intake.items() if f.get("oldest_s", 0) >= BEHIND_S]
    if not behind:
        return "intake: keeping up"
    return "intake: " + "; ".join(
        f"{lane} behind by {int(f['messages']):,} message(s) / {f['oldest_s']:.1f} s"
        if f.get("messages", 0) else f"{lane} behind by {f['oldest_s']:.1f} s (the broker "
        "holds the messages)" for lane, f in behind)


def status_path(journal: JournalConfig) -> Path:
    """Where the running gateway writes its status: `journal.status_path`, or beside the
    journal."""
    return journal.status_path or journal.path.parent / STATUS_FILE


def write_status(path: Path, snapshot: StatusSnapshot) -> None:
    """Atomically replace the status file (blocking: call from a thread).

    On a full disk, where no new file can be written, the file's own blocks are written
    over instead: the status matters most then. It is padded with spaces to whole blocks,
    with room to grow (new counters) without new ones.
    """
    data = msgspec.json.encode(snapshot)
    room = len(data) + max(STATUS_SLACK, len(data) // 2)  # to grow into on a full disk
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data + b" " * (room - len(data) + -room % STATUS_BLOCK))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if exc.errno != errno.ENOSPC or size < len(data):
            raise
        with path.open("r+b") as f:
            f.write(data + b" " * (size - len(data)))


def read_status(path: Path) -> StatusSnapshot:
    return msgspec.json.decode(path.read_bytes(), type=StatusSnapshot)


async def keep_writing(path: Path, snapshot: Any, clock: Clock, interval_s: float = 2.0) -> None:
    """Write `snapshot()` every `interval_s` seconds until cancelled."""
    try:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("cannot create %s for the status file: %s", path.parent, exc)
    while True:
        try:
            await asyncio.to_thread(write_status, path, snapshot())
        except OSError as exc:  # a full disk must not stop the gateway for a status file
            log.warning("cannot write %s: %s", path, exc)
        await clock.sleep(interval_s)
