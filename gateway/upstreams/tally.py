"""Counts per period and group for an upstream's aggregate rules, kept in the journal's
state with the upstream's cursor, so that a restart neither loses nor counts a record twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

Group = tuple[tuple[str, str], ...]
Key = tuple[str, int, Group]  # (policy rule, period start, group)


@dataclass
class _Bucket:
    count: int = 0
    seq: int = 0  # the last record counted


@dataclass
class Tally:
    """Open periods' counts. A period is sent once it ended (and its rule's delay passed);
    a record that comes later for a period already sent is counted in the oldest open one."""

    buckets: dict[Key, _Bucket] = field(default_factory=dict)
    sent_before: dict[str, int] = field(default_factory=dict)  # rule -> periods before: sent

    def add(self, rule: str, period_start: int, group: Group, seq: int) -> None:
        start = max(period_start, self.sent_before.get(rule, period_start))
        bucket = self.buckets.setdefault((rule, start, group), _Bucket())
        bucket.count += 1
        bucket.seq = max(bucket.seq, seq)

    def due(self, now_ms: int, period_ms: dict[str, int], delay_ms: dict[str, int]
            ) -> list[tuple[Key, int, int]]:
        """Periods that ended, oldest first: (key, count, last seq)."""
        out = [(key, b.count, b.seq) for key, b in self.buckets.items()
               if key[1] + period_ms[key[0]] + delay_ms[key[0]] <= now_ms]
        return sorted(out, key=lambda item: (item[0][1], item[0][0], item[0][2]))

    def next_due(self, period_ms: dict[str, int], delay_ms: dict[str, int]) -> int | None:
        ends = [key[1] + period_ms[key[0]] + delay_ms[key[0]] for key in self.buckets]
        return min(ends) if ends else None

    def sent(self, keys: list[Key], period_ms: dict[str, int]) -> None:
        for key in keys:
            self.buckets.pop(key, None)
            rule, start, _ = key
            self.sent_before[rule] = max(self.sent_before.get(rule, 0), start + period_ms[rule])

    def forget(self, rules: set[str]) -> None:
        """Drop the counts of rules no longer in the policy."""
        self.buckets = {k: b for k, b in self.buckets.items() if k[0] in rules}
        self.sent_before = {r: t for r, t in self.sent_before.items() if r in rules}

    def encode(self) -> bytes:
        return json.dumps({
            "buckets": [[rule, start, [list(g) for g in group], b.count, b.seq]
                        for (rule, start, group), b in self.buckets.items()],
            "sent_before": self.sent_before}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> Tally:
        tally = cls()
        if not data:
            return tally
        raw = json.loads(data)
        for rule, start, group, count, seq in raw.get("buckets", []):
            key = (str(rule), int(start), tuple((str(k), str(v)) for k, v in group))
            tally.buckets[key] = _Bucket(int(count), int(seq))
        tally.sent_before = {str(k): int(v) for k, v in raw.get("sent_before", {}).items()}
        return tally
