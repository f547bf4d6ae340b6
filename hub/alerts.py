"""The city-wide alert state: one entry per alert of every compound, in a replicated
JetStream key-value bucket that every hub process writes and reads.

A transition replaces the entry only when it is newer (its time, then firing before
acknowledged before resolved), with a compare-and-set on the entry's revision: two hubs,
or a redelivered transition, cannot move an alert back. Each hub keeps a copy of the whole
bucket from a watch, which its board shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gateway.city_connection import cancelling
from gateway.core.model import Alert, AlertState, DeviceKind, Scalar, Severity

log = logging.getLogger(__name__)

STATE_RANK = {AlertState.FIRING: 0, AlertState.ACKNOWLEDGED: 1, AlertState.RESOLVED: 2}
CAS_TRIES = 10
WATCH_RETRY_S = 1.0


class AlertContention(Exception):
    """Other writers kept changing an alert's entry: the transition was not recorded yet."""


class CityAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert with its compound, as the bucket holds it and the board shows it."""

    district: str
    site: str
    id: str
    ts: int
    rule: str
    device: str
    kind: DeviceKind
    state: AlertState
    severity: Severity
    since: int
    value: Scalar | None = None
    message: str = ""
    by: str | None = None
    place: dict[str, str | int] | None = None  # building, unit, floor: what the policy let out

    @classmethod
    def of(cls, district: str, site: str, alert: Alert,
           place: dict[str, str | int] | None = None) -> CityAlert:
        return cls(district=district, site=site, id=alert.id, ts=alert.ts, rule=alert.rule,
                   device=alert.device, kind=alert.kind, state=alert.state,
                   severity=alert.severity, since=alert.since, value=alert.value,
                   message=alert.message, by=alert.by, place=place or None)

    @property
    def key(self) -> str:
        return alert_key(self.district, self.site, self.id)

    def newer_than(self, other: CityAlert) -> bool:
        return (self.ts, STATE_RANK[self.state]) > (other.ts, STATE_RANK[other.state])


def alert_key(district: str, site: str, alert_id: str) -> str:
    """The bucket's key of an alert: a digest, as ids may hold what keys may not."""
    return hashlib.blake2b(f"{district}\0{site}\0{alert_id}".encode(), digest_size=16
                           ).hexdigest()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CityAlert)


class CityAlerts:
    """The bucket, and this process's copy of it (`current`, by key)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.current: dict[str, CityAlert] = {}
        self._revisions: dict[str, int] = {}
        self.synced = asyncio.Event()  # the watch has read the whole bucket once
        self.listeners: list[Callable[[], None]] = []

    async def apply(self, alert: CityAlert) -> bool:
        """Record a transition unless the bucket holds a newer one; True when it did."""
        key = alert.key
        value = _encoder.encode(alert)
        for _ in range(CAS_TRIES):
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:  # never there, or purged
                try:
                    await self._kv.create(key, value)
                    return True
                except KeyWrongLastSequenceError:
                    continue  # another hub created it first: compare with that
            held = _decoder.decode(entry.value) if entry.value else None
            if held is not None and not alert.newer_than(held):
                return False
            try:
                await self._kv.update(key, value, last=entry.revision)
                return True
            except KeyWrongLastSequenceError:
                continue
        raise AlertContention(f"alert {alert.id}: the bucket's entry changed under each of "
                              f"{CAS_TRIES} tries")

    async def watch(self) -> None:
        """Keep `current` equal to the bucket, until cancelled; a broken watch starts again
        and reads the bucket anew."""
        while True:
            try:
                await self._watch_once()
            except (nats.errors.Error, OSError) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                log.warning("alerts: the bucket's watch broke (%s); watching again", exc)
                await asyncio.sleep(WATCH_RETRY_S)

    async def _watch_once(self) -> None:
        watcher = await self._kv.watchall()
        seen: set[str] | None = set()  # keys read before the end of what was there
        try:
            async for entry in watcher:
                if entry is None:  # the end of what was there: drop what is gone
                    if seen is not None:
                        for key in self.current.keys() - seen:
                            self.current.pop(key, None)
                            self._revisions.pop(key, None)
                    seen = None
                    self.synced.set()
                    self._changed()
                    continue
                if seen is not None:
                    seen.add(entry.key)
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self.current.pop(entry.key, None)
                    self._revisions.pop(entry.key, None)
                else:
                    try:
                        self.current[entry.key] = _decoder.decode(entry.value)
                        self._revisions[entry.key] = entry.revision or 0
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        log.warning("alerts: entry %s cannot be read", entry.key)
                if seen is None:
                    self._changed()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    async def forget_resolved(self, before_ms: int) -> int:
        """Delete resolved alerts whose last transition is older than `before_ms`."""
        gone = 0
        for key, alert in list(self.current.items()):
            if alert.state is AlertState.RESOLVED and alert.ts < before_ms:
                try:
                    await self._kv.delete(key, last=self._revisions.get(key))
                    gone += 1
                except KeyWrongLastSequenceError:
                    pass  # it changed meanwhile: the next round looks again
        return gone

    def active(self) -> list[CityAlert]:
        return [a for a in self.current.values() if a.state is not AlertState.RESOLVED]

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()
