"""Each alert's timeline: firing, every notification with its group and result, the
acknowledgement with who and the note, notes, resolution.

The journal's records are pruned once every sink has passed them; the audit of an incident
must outlive that. Each alert's timeline is a state row of the journal (`console.alert:` and
the alert's id), committed with an fsync like an acknowledgement, and kept `keep_days`
after the alert resolved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from gateway.core.clock import Clock
from gateway.core.model import Alert, AlertState, Notify, NotifyReason
from gateway.journal import Journal, NotJournalledError

log = logging.getLogger(__name__)

KEY = "console.alert:"
MAX_NOTE = 500  # characters of a note
PRUNE_S = 3600.0


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ts: int
    # firing | acknowledged | resolved | notified | notify_failed | note | ack_note |
    # resolve_reason
    what: str
    by: str | None = None
    note: str | None = None
    group: str | None = None
    step: int | None = None


class AlertRecord(msgspec.Struct, kw_only=True):
    alert: Alert  # as last transitioned
    entries: list[Entry] = msgspec.field(default_factory=list)
    acked_at: int | None = None  # when it was acknowledged, for the shift report


class NoteError(ValueError):
    """A note that is not taken: empty, too long, or for an alert the gateway has no record of."""


def check_note(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_NOTE:
        raise NoteError(f"the note has {len(text)} characters; at most {MAX_NOTE}")
    return text


class AlertLog:
    """The timelines of the alerts of the last `keep_days`; `changed` runs on every change."""

    def __init__(self, journal: Journal, clock: Clock, keep_days: float) -> None:
        self._journal = journal
        self._clock = clock
        self._keep_ms = round(keep_days * 86_400_000)
        self.records: dict[str, AlertRecord] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []

    async def load(self) -> None:
        rows = await self._journal.read_states(KEY)
        for key, data in rows.items():
            try:
                self.records[key[len(KEY):]] = msgspec.json.decode(data, type=AlertRecord)
            except msgspec.MsgspecError as exc:
                log.warning("timeline %s unreadable, left out: %s", key, exc)
        self._wake.set()  # the first turn forgets what is past keep_days

    # -- what happens, from the gateway --------------------------------------------------

    def transition(self, alert: Alert) -> None:
        record = self.records.get(alert.id)
        if record is None:
            record = self.records[alert.id] = AlertRecord(alert=alert)
        what = alert.state.value
        if any(e.what == what and e.ts == alert.ts for e in record.entries):
            return  # the gateway's start tells the active alerts again
        record.alert = alert
        record.entries.append(Entry(ts=alert.ts, what=what, by=alert.by))
        if alert.state is AlertState.ACKNOWLEDGED:
            record.acked_at = alert.ts
        self._touch(alert.id)

    def notified(self, intent: Notify, delivered: bool) -> None:
        record = self.records.get(intent.alert_id)
        if record is None or intent.reason is not NotifyReason.ESCALATION:
            return
        record.entries.append(Entry(ts=self._clock.now_ms(),
                                    what="notified" if delivered else "notify_failed",
                                    group=intent.group, step=intent.step))
        self._touch(intent.alert_id)

    async def note(self, alert_id: str, by: str, text: str, what: str = "note") -> None:
        """Add a person's note, on disk before this returns."""
        record = self.records.get(alert_id)
        if record is None:
            raise NoteError(f"no alert {alert_id}")
        record.entries.append(Entry(ts=self._clock.now_ms(), what=what, by=by, note=text))
        self._dirty.discard(alert_id)
        await self._journal.commit(state={KEY + alert_id: msgspec.json.encode(record)})
        self._changed()

    def notified_groups(self, alert_id: str) -> list[Entry]:
        record = self.records.get(alert_id)
        return [e for e in record.entries if e.what in ("notified", "notify_failed")] \
            if record else []

    # -- writing -------------------------------------------------------------------------

    def _touch(self, alert_id: str) -> None:
        self._dirty.add(alert_id)
        self._wake.set()
        self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    async def run(self) -> None:
        """Write the timelines that changed, and forget those past `keep_days`."""
        last_prune = self._clock.monotonic() - PRUNE_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            state: dict[str, bytes | None] = {}
            if self._clock.monotonic() - last_prune >= PRUNE_S:
                last_prune = self._clock.monotonic()
                state.update(self._expired())
            dirty = set(self._dirty)
            state.update({KEY + i: msgspec.json.encode(self.records[i]) for i in dirty
                          if i in self.records})
            if not state:
                continue
            try:
                await self._journal.commit(state=state)
            except NotJournalledError as exc:
                log.warning("alert timelines not written (%s): tried again at the next "
                            "change", exc)
                continue
            self._dirty -= dirty  # what changed meanwhile is written in the next turn

    @property
    def saved(self) -> bool:
        """Every timeline is in the journal as it stands."""
        return not self._dirty

    def _expired(self) -> dict[str, bytes | None]:
        before = self._clock.now_ms() - self._keep_ms
        gone = [i for i, r in self.records.items()
                if r.alert.state is AlertState.RESOLVED and r.alert.ts < before]
        for alert_id in gone:
            del self.records[alert_id]
        return {KEY + i: None for i in gone}
