"""Who logged in to the console, who logged out, and which logins were refused: journalled.

An alert's actions (acknowledgement, notes, resolution by hand) are in its timeline; the
console's sessions are in the journal beside them, one state row per entry
(`console.access:` and the entry's time), committed with an fsync before the login or
logout is answered, and kept `keep_days` like the timelines. The shift handover reads them:
who was at the console during the shift.

Refusals cost a commit each, so they are bounded: a wrong password is journalled (at most
five a minute per name and per address get that far), a login refused by the limit once per
name and address and minute of refusals.
"""

from __future__ import annotations

import logging
import secrets
from typing import Literal

import msgspec

from gateway.core.clock import Clock
from gateway.journal import Journal, NotJournalledError

log = logging.getLogger(__name__)

KEY = "console.access:"
PRUNE_S = 3600.0
LIMITED_QUIET_S = 60.0  # one `login_limited` entry per name and address in this time
MAX_QUIET = 10_000  # names and addresses remembered for that; the oldest go first

What = Literal["login", "logout", "login_failed", "login_limited"]


class AccessEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ts: int
    what: What
    user: str  # the name given (cut to 64 characters), whether an account or not
    address: str | None = None
    role: str | None = None


class AccessLog:
    """The console's logins, logouts and refused logins of the last `keep_days`."""

    def __init__(self, journal: Journal, clock: Clock, keep_days: float) -> None:
        self._journal = journal
        self._clock = clock
        self._keep_ms = round(keep_days * 86_400_000)
        self._rows: dict[str, AccessEntry] = {}  # state key -> entry
        self._last_prune = -PRUNE_S
        self._quiet: dict[tuple[str, str], float] = {}
        self._count = 0

    async def load(self) -> None:
        rows = await self._journal.read_states(KEY)
        for key, data in rows.items():
            try:
                self._rows[key] = msgspec.json.decode(data, type=AccessEntry)
            except msgspec.MsgspecError as exc:
                log.warning("console access entry %s unreadable, left out: %s", key, exc)

    async def record(self, what: What, user: str, address: str | None = None,
                     role: str | None = None) -> bool:
        """Journal one entry (on disk when this returns True). A refusal by the limit within
        a minute of the last one for the same name and address is not journalled again.
        False when the journal refused the commit: the console goes on, logged."""
        now = self._clock.monotonic()
        if what == "login_limited":
            quiet = (user, address or "")
            if now - self._quiet.get(quiet, now - LIMITED_QUIET_S) < LIMITED_QUIET_S:
                return False
            self._quiet.pop(quiet, None)
            self._quiet[quiet] = now
            while len(self._quiet) > MAX_QUIET:
                del self._quiet[next(iter(self._quiet))]
        entry = AccessEntry(ts=self._clock.now_ms(), what=what, user=user, address=address,
                            role=role)
        # time first, then this run's count, so the rows sort in order; the random part
        # keeps apart two of one millisecond from two runs
        self._count += 1
        key = f"{KEY}{entry.ts:013d}.{self._count:08d}.{secrets.token_hex(4)}"
        state: dict[str, bytes | None] = {key: msgspec.json.encode(entry)}
        if now - self._last_prune >= PRUNE_S:
            state.update(self._expired())
            self._last_prune = now
        try:
            await self._journal.commit(state=state)
        except NotJournalledError as exc:
            log.warning("console %s of %r not journalled: %s", what, user[:32], exc)
            return False
        self._rows[key] = entry
        return True

    @property
    def entries(self) -> list[AccessEntry]:
        """Every entry kept, oldest first."""
        return [self._rows[k] for k in sorted(self._rows)]

    def since(self, since_ms: int) -> list[AccessEntry]:
        return [e for e in self.entries if e.ts >= since_ms]

    def _expired(self) -> dict[str, bytes | None]:
        before = self._clock.now_ms() - self._keep_ms
        gone = [k for k, e in self._rows.items() if e.ts < before]
        for key in gone:
            del self._rows[key]
        return dict.fromkeys(gone)
