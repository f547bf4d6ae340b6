"""A snapshot of the running gateway, written beside the journal for `scgw status`."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from gateway.clock import Clock
from gateway.config import JournalConfig

STATUS_FILE = "status.json"

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


def status_path(journal: JournalConfig) -> Path:
    """Where the running gateway writes its status: `journal.status_path`, or beside the
    journal."""
    return journal.status_path or journal.path.parent / STATUS_FILE


def write_status(path: Path, snapshot: StatusSnapshot) -> None:
    """Atomically replace the status file (blocking: call from a thread)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(snapshot))
    os.replace(tmp, path)


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
