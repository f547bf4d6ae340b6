"""Can the journal be written where it is configured, with room to grow?"""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path

from gateway.core.config import JournalConfig
from gateway.ops.doctor.finding import Finding, fail, ok, warn

CHECK = "disk"
_MB = 2**20

_FREE_FIX = ("free space on that file system (sudo apt clean; sudo journalctl "
             "--vacuum-size=100M) or move journal.path to a larger disk")


async def check_journal_disk(journal: JournalConfig) -> Finding:
    return await asyncio.to_thread(_probe, journal)


def _probe(journal: JournalConfig) -> Finding:
    directory = journal.path.parent
    subject = str(journal.path)
    existing = _nearest_existing(directory)
    move = "set journal.path to a file in a writable directory, e.g. /var/lib/scgw/journal.db"
    if not existing.is_dir():
        return fail(CHECK, subject, f"{directory} cannot be created: {existing} is not a "
                    "directory", move)
    fs = os.statvfs(existing)
    if fs.f_flag & os.ST_RDONLY:
        return fail(CHECK, subject, f"{existing} is on a read-only file system", move)
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write to" if existing == directory else f"create {directory} in"
        return fail(CHECK, subject, f"this user cannot {verb} {existing}",
                    f"sudo install -d -o {getpass.getuser()} {directory}; or {move}")
    files = [journal.path, journal.path.with_name(journal.path.name + "-wal")]
    for file in files:
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return fail(CHECK, subject, f"this user cannot write {file}",
                        f"sudo chown {getpass.getuser()} {file}")
    free = fs.f_bavail * fs.f_frsize
    used = sum(f.stat().st_size for f in files if f.exists())
    floor = journal.min_free_disk_mb * _MB
    growth = max(0.0, journal.max_mb * _MB - used)
    where = f"{free / _MB:.0f} MB free on {existing}"
    if free < floor:
        return fail(CHECK, subject, f"{where}, below journal.min_free_disk_mb "
                    f"({journal.min_free_disk_mb:g}): the journal refuses events and keeps "
                    "only alarms", _FREE_FIX)
    if free < floor + growth:
        return warn(CHECK, subject, f"{where}: the journal may grow by {growth / _MB:.0f} MB "
                    f"more (journal.max_mb {journal.max_mb:g}) and keeps "
                    f"{journal.min_free_disk_mb:g} MB free, so it would refuse events before "
                    "it is full", f"{_FREE_FIX}; or lower journal.max_mb")
    state = f"journal {used / _MB:.0f} MB of {journal.max_mb:g} MB" if used else \
        "no journal yet" + ("" if directory.exists() else f" ({directory} will be created)")
    return ok(CHECK, subject, f"{where}; {state}")


def _nearest_existing(directory: Path) -> Path:
    path = directory.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
