"""The doctor's findings as a table for people or as JSON for machines."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from gateway.ops.doctor.finding import Finding, Status

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red",
          Status.SKIP: "dim"}


def print_table(findings: list[Finding], console: Console) -> None:
    table = Table("check", "status", Column("subject", overflow="fold", ratio=2),
                  Column("found", overflow="fold", ratio=3),
                  Column("fix", overflow="fold", ratio=3))
    for f in findings:
        # Text, not markup: found and fix quote paths, brackets and shell commands
        table.add_row(f.check, Text(f.status.upper(), style=_STYLE[f.status]), Text(f.subject),
                      Text(f.found), Text(f.fix or ""))
    console.print(table)
    counts = Counter(f.status for f in findings)
    console.print(", ".join(f"{counts[s]} {s}" for s in Status if counts[s]))


def to_json(findings: list[Finding]) -> str:
    return json.dumps({
        "ok": not any(f.status is Status.FAIL for f in findings),
        "findings": [asdict(f) for f in findings],
    }, indent=2)
