"""The shift handover: the alerts of a shift, which are still open, who acknowledged what
and how fast (time to acknowledge per alert, and its median per severity)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from gateway.console.alert_log import AlertRecord
from gateway.core.model import AlertState


def shift_report(records: Iterable[AlertRecord], since_ms: int) -> dict[str, Any]:
    """The alerts that fired since `since_ms`, or were still open then, oldest first."""
    rows: list[dict[str, Any]] = []
    for record in records:
        alert = record.alert
        if alert.since < since_ms and alert.state is AlertState.RESOLVED and alert.ts < since_ms:
            continue
        acked = next((e for e in record.entries if e.what == "acknowledged"), None)
        rows.append({
            "id": alert.id, "rule": alert.rule, "device": alert.device,
            "severity": alert.severity.value, "state": alert.state.value, "since": alert.since,
            "by": acked.by if acked else None,
            "ack_ms": record.acked_at - alert.since if record.acked_at is not None else None,
            "notes": [e.note for e in record.entries if e.note],
        })
    rows.sort(key=lambda r: (r["since"], r["id"]))
    times: dict[str, list[int]] = {}
    for row in rows:
        if row["ack_ms"] is not None:
            times.setdefault(row["severity"], []).append(row["ack_ms"])
    return {"since": since_ms, "alerts": rows,
            "median_ack_ms": {s: round(statistics.median(v)) for s, v in sorted(times.items())}}
