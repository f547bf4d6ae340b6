"""Device status changes refused by the journal (a write error) are journalled later."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.core.model import DeviceEvent, DeviceKind
from gateway.journal import Journal
from gateway.status import Status
from gateway.supervisor import Gateway
from tests.helpers import eventually, make_config, sos_mqtt, unique_site


async def test_a_status_change_the_journal_refused_is_journalled_once_it_writes_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The board tells a change once: a device gone offline whose event the journal
    refused (an I/O error, injected twice) is handed over again, with the list of offline
    devices, and the changes that came meanwhile follow it."""
    refused: list[str] = []
    real = Journal._commit_sync

    def refuse_twice(self: Journal, group: Any, lazy: Any) -> Any:
        if len(refused) < 2 and any(isinstance(r, DeviceEvent) and r.type == "offline"
                                    for job in group for r in job.records):
            refused.append("refused")
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, group, lazy)

    monkeypatch.setattr(Journal, "_commit_sync", refuse_twice)
    devices = [sos_mqtt(f"sos-{n}", f"vendor/sos-{n}") for n in range(2)]
    gateway = Gateway(make_config(tmp_path, site=unique_site("gone"), devices=devices))
    for n in range(2):
        gateway.board.add(f"sos-{n}", DeviceKind.ELDER_BUTTON, 60, 0.0)
        gateway.board.set(f"sos-{n}", Status.ONLINE)  # found at start: no event
    async with gateway.journal as journal:
        task = asyncio.create_task(gateway._journal_status_changes())
        try:
            await eventually(lambda: gateway.board.transitions.empty(), what="start taken")
            gateway.board.unreachable("sos-0")
            await eventually(lambda: len(refused) == 1, what="the first refusal")
            gateway.board.unreachable("sos-1")  # while the first waits to be handed over
            await eventually(lambda: journal.last_seq == 2, timeout=15,
                             what="both offline events")
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        entries = (await journal.read_after(0, 10)).entries
        stored = await journal.read_state("status.offline")
    assert refused == ["refused", "refused"]
    assert [(e.record.device, e.record.type) for e in entries
            if isinstance(e.record, DeviceEvent)] == [("sos-0", "offline"),
                                                     ("sos-1", "offline")]
    assert stored == b'["sos-0", "sos-1"]'
    assert gateway.counters.get("journal_retries", device="sos-0") == 2
