"""The rule state as rows: one per (rule, key) slot and one for the rest, saved as they change.

An SD card is a budget: saving the whole state whenever anything in it changed wrote
kilobytes and an fsync per batch of readings, growing with every device. Here only the rows
that changed are written, and each change is sorted by what losing it would cost:

- durable: phases, deadlines, alerts, escalation progress, counted hits, members; a power cut
  must not lose them, so they go with an fsync, in the transaction of their transitions;
- lazy: what telemetry alone moves (rate-of-change samples, the engine's clock, its
  counters). Losing these costs one slope or a counter, never an alarm: they are written
  without an fsync, at the runner's convenience.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from gateway.core.model import Alert
from rules.notify import Notify
from rules.state import STATE_VERSION, EngineState, RuleState, Slot

PREFIX = "rules."
META = "rules.meta"
# the rules' fingerprints and keys: apart from the meta row, whose `fires` changes with every
# alert, so that an alert does not write them again (a few KiB with many rules)
INDEX = "rules.index"
_SLOT = "rules.slot\x1f"  # then the rule id, \x1f, the key
_SEP = "\x1f"
LEGACY = "rules.state"  # the whole state in one row, as older gateways saved it

Row = tuple[str, str]  # (rule id, key)


class Meta(msgspec.Struct, kw_only=True):
    """Everything in EngineState but the slots."""

    v: int = STATE_VERSION
    now: int | None = None
    fires: int = 0
    rules: dict[str, tuple[str, str]] = msgspec.field(default_factory=dict)  # fingerprint, key
    outbox: list[Notify] = msgspec.field(default_factory=list)
    owed: list[Alert] = msgspec.field(default_factory=list)
    counters: dict[str, int] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class Changes:
    """Rows to write (bytes) or delete (None), by how they must be committed."""

    durable: dict[str, bytes | None] = field(default_factory=dict)
    lazy: dict[str, bytes | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.durable or self.lazy)


@functools.lru_cache(maxsize=65_536)
def slot_key(rule_id: str, key: str) -> str:
    """A slot's row key; made once per (rule, key) while it is in use, not per change."""
    return f"{_SLOT}{rule_id}{_SEP}{key}"


Index = dict[str, tuple[str, str]]  # rule id -> (fingerprint, key)


def _meta(state: EngineState) -> Meta:
    return Meta(v=state.v, now=state.now, fires=state.fires, outbox=state.outbox,
                owed=state.owed, counters=state.counters)


def _index(state: EngineState) -> Index:
    return {r: (s.fingerprint, s.key) for r, s in state.rules.items()}


_encode = msgspec.json.Encoder().encode
_slot_decoder = msgspec.json.Decoder(Slot)
_meta_decoder = msgspec.json.Decoder(Meta)
_index_decoder = msgspec.json.Decoder(Index)


_EMPTY = _encode(Slot())  # what a slot holding only samples keeps durably: nothing


def _durable_part(slot: Slot) -> bytes:
    return _encode(msgspec.structs.replace(slot, samples={})) if slot.samples else _encode(slot)


def _durable_meta(meta: Meta) -> bytes:
    return _encode(msgspec.structs.replace(meta, now=None, counters={}))


def decode(rows: Mapping[str, bytes]) -> EngineState:
    """The engine state saved as rows; raises ValueError when they cannot be read."""
    raw = rows.get(META)
    if raw is None:
        raise ValueError("the rule state has slots but no rules.meta row")
    try:
        meta = _meta_decoder.decode(raw)
        if meta.v != STATE_VERSION:
            raise ValueError(f"rule state version {meta.v}; this gateway reads {STATE_VERSION}")
        # older gateways kept the index in the meta row
        index = _index_decoder.decode(rows[INDEX]) if INDEX in rows else meta.rules
        rules = {r: RuleState(fingerprint=fp, key=key) for r, (fp, key) in index.items()}
        for row, value in rows.items():
            if not row.startswith(_SLOT):
                continue
            rule_id, _, key = row[len(_SLOT):].partition(_SEP)
            if rule_id in rules:
                rules[rule_id].slots[key] = _slot_decoder.decode(value)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"the saved rule state cannot be read: {exc}") from exc
    return EngineState(v=meta.v, now=meta.now, fires=meta.fires, rules=rules,
                       outbox=meta.outbox, owed=meta.owed, counters=meta.counters)


class SavedRows:
    """What was last handed out for saving, per row, to tell what changed since."""

    def __init__(self) -> None:
        self._full: dict[str, bytes] = {}
        self._durable: dict[str, bytes] = {}

    def remember(self, rows: Mapping[str, bytes]) -> None:
        """The rows as they are stored (after a restore)."""
        self._full = dict(rows)
        self._durable = {}
        for row, value in rows.items():
            if row == META:
                self._durable[row] = _durable_meta(_meta_decoder.decode(value))
            elif row == INDEX:
                self._durable[row] = value
            elif row.startswith(_SLOT):
                self._durable[row] = _durable_part(_slot_decoder.decode(value))

    def changes(self, state: EngineState, touched: Iterable[Row] | None) -> Changes:
        """The rows that differ from what was last handed out; `touched` None: look at all."""
        out = Changes()
        meta = _meta(state)
        self._compare(META, _encode(meta), _durable_meta(meta), out)
        index = _encode(_index(state))
        self._compare(INDEX, index, index, out)
        if touched is None:
            current = {slot_key(r, k) for r, s in state.rules.items() for k in s.slots}
            for row in [r for r in self._full if r.startswith(_SLOT) and r not in current]:
                self._gone(row, out)
            pairs: Iterable[Row] = [(r, k) for r, s in state.rules.items() for k in s.slots]
        else:
            pairs = touched
        for rule_id, key in pairs:
            row = slot_key(rule_id, key)
            rule = state.rules.get(rule_id)
            slot = rule.slots.get(key) if rule is not None else None
            if slot is None:
                self._gone(row, out)
            else:
                self._compare(row, _encode(slot), _durable_part(slot), out)
        return out

    def _compare(self, row: str, full: bytes, durable: bytes, out: Changes) -> None:
        if durable != self._durable.get(row, _EMPTY):
            out.durable[row] = full
        elif full != self._full.get(row):
            out.lazy[row] = full
        else:
            return
        self._full[row], self._durable[row] = full, durable

    def _gone(self, row: str, out: Changes) -> None:
        if row in self._full:
            durable = self._durable.pop(row, _EMPTY) != _EMPTY
            (out.durable if durable else out.lazy)[row] = None
            del self._full[row]
