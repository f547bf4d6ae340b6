"""Small statistics helpers for the benchmark figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """Percentiles of a latency sample, in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    min: float
    mean: float

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Summary:
        ms = [s * 1000 for s in samples]
        if not ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(len(ms), percentile(ms, 50), percentile(ms, 95), percentile(ms, 99),
                   max(ms), min(ms), sum(ms) / len(ms))

    def text(self) -> str:
        return f"{self.p50:.1f} / {self.p95:.1f} / {self.p99:.1f} / {self.max:.1f} ms"

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50_ms": self.p50, "p95_ms": self.p95,
                "p99_ms": self.p99, "max_ms": self.max, "min_ms": self.min,
                "mean_ms": self.mean}
