"""`scgw report shift`: the shift handover from the journal's alert timelines, on a terminal."""

from __future__ import annotations

import time

import msgspec
from rich.console import Console
from rich.table import Table

from gateway.console.access_log import KEY as ACCESS_KEY
from gateway.console.access_log import AccessEntry
from gateway.console.alert_log import KEY, AlertRecord
from gateway.console.shift import shift_report
from gateway.core.config import JournalConfig
from gateway.journal_desk import read_states


def read_access(journal: JournalConfig) -> list[AccessEntry]:
    """The console's logins, logouts and refused logins in the journal, oldest first."""
    entries = []
    for value in read_states(journal, ACCESS_KEY):
        try:
            entries.append(msgspec.json.decode(value, type=AccessEntry))
        except msgspec.MsgspecError:
            continue
    return entries


def read_records(journal: JournalConfig) -> list[AlertRecord]:
    """The alert timelines in the journal, through the gateway if it runs."""
    rows = read_states(journal, KEY)
    records = []
    for value in rows:
        try:
            records.append(msgspec.json.decode(value, type=AlertRecord))
        except msgspec.MsgspecError:
            continue  # written by a newer gateway: the rest still tells the shift
    return records


ACTIONS = {"login": "logged in", "logout": "logged out", "login_failed": "wrong password",
           "login_limited": "refused: too many attempts"}


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _took(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = round(ms / 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def print_shift(journal: JournalConfig, since_ms: int, console: Console) -> None:
    if not journal.path.exists():
        console.print(f"no journal at {journal.path}", markup=False)
        return
    report = shift_report(read_records(journal), since_ms)
    rows = report["alerts"]
    still = [r for r in rows if r["state"] != "resolved"]
    console.print(f"Shift since {_when(since_ms)}: {len(rows)} alert(s), {len(still)} still "
                  "open", markup=False)
    table = Table("since", "rule", "device", "severity", "state", "acknowledged by",
                  "time to ack", "notes")
    for r in rows:
        table.add_row(_when(r["since"]), r["rule"], r["device"], r["severity"], r["state"],
                      r["by"] or "-", _took(r["ack_ms"]), " / ".join(r["notes"]))
    console.print(table)
    for severity, ms in report["median_ack_ms"].items():
        console.print(f"median time to acknowledge, {severity}: {_took(ms)}", markup=False)
    access = [e for e in read_access(journal) if e.ts >= since_ms]
    if access:
        table = Table("time", "account", "action", "address")
        for e in access:
            table.add_row(_when(e.ts), e.user, ACTIONS[e.what], e.address or "-")
        console.print("Console logins", markup=False)
        console.print(table)
