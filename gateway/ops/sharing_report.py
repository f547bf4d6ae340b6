"""What left the compound, from the audit in the journal's database; and what would leave
for a recorded stream (a preview of the policies)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gateway.core.config import GatewayConfig, JournalConfig
from gateway.core.model import AckCommand, DeviceEvent, Reading, Record, decode
from gateway.core.operator_files import read_operator_file
from gateway.journal import SharedRow
from gateway.journal_desk import read_shared
from gateway.upstreams.build import shaper_for
from gateway.upstreams.shaping import Counted, Shaped
from gateway.upstreams.tally import Tally


@dataclass
class UpstreamReport:
    records: int = 0
    deliveries: int = 0  # a record delivered again (after a crash) counts here again
    kinds: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    personal: Counter[str] = field(default_factory=Counter)  # field:class:how
    bases: dict[str, str] = field(default_factory=dict)  # policy rule -> its basis
    first: int | None = None
    last: int | None = None

    def add(self, row: SharedRow) -> None:
        self.records += 1
        self.deliveries += row.deliveries
        self.kinds[row.kind] += 1
        self.types[row.type] += 1
        self.rules[row.rule] += 1
        for item in filter(None, row.personal.split(",")):
            self.personal[item] += 1
        if row.basis:
            self.bases[row.rule] = row.basis
        self.first = row.at if self.first is None else min(self.first, row.at)
        self.last = row.at if self.last is None else max(self.last, row.at)

    def as_json(self) -> dict[str, Any]:
        return {"records": self.records, "deliveries": self.deliveries,
                "kinds": dict(self.kinds), "types": dict(self.types),
                "rules": dict(self.rules), "personal_fields": dict(self.personal),
                "bases": self.bases, "first_confirmed": self.first,
                "last_confirmed": self.last}


def read_audit(journal: JournalConfig, since_ms: int, subject: str | None = None
               ) -> list[SharedRow]:
    """The audit rows confirmed at or after `since_ms` (about `subject` only, if given),
    through the gateway if it runs."""
    rows = read_shared(journal, since_ms)
    return rows if subject is None else [row for row in rows if row.subject == subject]


def summarise(rows: Iterable[SharedRow]) -> dict[str, UpstreamReport]:
    out: dict[str, UpstreamReport] = {}
    for row in rows:
        out.setdefault(row.upstream, UpstreamReport()).add(row)
    return dict(sorted(out.items()))


class EventsFileError(Exception):
    """A line of an events file that is not a record."""


def read_records(file: Path) -> list[Record]:
    """The records of a JSON-lines file (as published on MQTT or replayed by the rules);
    blank lines, `#` comments, `{"directory": ...}` and `{"tick": ...}` lines are
    skipped."""
    out: list[Record] = []
    for number, raw in enumerate(read_operator_file(file).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(('{"directory"', '{"tick"')):
            continue  # a rule sample's places and ticks: the configuration's places count
        try:
            out.append(decode(line))
        except msgspec.MsgspecError as exc:
            raise EventsFileError(f"{file}:{number}: not a record: {exc}") from exc
    return out


def with_alerts(config: GatewayConfig, records: list[Record]) -> list[Record]:
    """`records` with the alert transitions the configured rules make of them, each after
    the record (or the timer) that caused it; alerts already in `records` are left out."""
    from rules.directory import directory_from_config
    from rules.engine import RuleEngine
    from rules.loader import load_pack, rule_sources

    engine = RuleEngine(load_pack(rule_sources(config)), directory_from_config(config))
    out: list[Record] = []
    for record in records:
        while (due := engine.next_deadline()) is not None and due <= record.ts:
            out += engine.on_time(due)
        if isinstance(record, DeviceEvent):
            out += [record, *engine.on_event(record)]
        elif isinstance(record, Reading):
            out += [record, *engine.on_reading(record)]
        elif isinstance(record, AckCommand):
            out += [record, *engine.on_ack(record)]
    return out


@dataclass(frozen=True)
class Preview:
    upstream: str
    rule: str
    device: str  # as it leaves
    payload: bytes


def preview(config: GatewayConfig, records: list[Record], env: dict[str, str]
            ) -> list[Preview]:
    """Exactly the payloads each upstream would receive for `records`, in order; the
    aggregate periods they open are shown as if they had ended."""
    out: list[Preview] = []
    for upstream in config.upstreams:
        shaper = shaper_for(config, upstream, env)
        tally = Tally()
        rules = {r.id: r for r in shaper.policy.rules}
        for seq, record in enumerate(records, start=1):
            result = shaper.shape(seq, record)
            if isinstance(result, Shaped):
                out.append(Preview(upstream.name, result.rule.id, result.parcel.device,
                                   result.parcel.payload))
            elif isinstance(result, Counted):
                tally.add(result.rule.id, result.period_start, result.group, seq)
        for (rule, start, group), bucket in sorted(tally.buckets.items()):
            shaped = shaper.aggregate_parcel(rules[rule], start, group, bucket.count,
                                             bucket.seq)
            out.append(Preview(upstream.name, rule, shaped.parcel.device,
                               shaped.parcel.payload))
    return out
