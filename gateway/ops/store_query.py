"""Reading points back from VictoriaMetrics over its HTTP API (demo, tests, `scgw`)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    values: list[float]
    timestamps: list[int]


def export_url(base: str, match: str) -> str:
    return f"{base}/api/v1/export?" + urllib.parse.urlencode({"match[]": match})


def export(base: str, match: str, timeout: float = 5.0) -> list[Series]:
    """Every raw sample of the series matching `match` (blocking: call from a thread)."""
    # make the most recent writes searchable first
    urllib.request.urlopen(f"{base}/internal/force_flush", timeout=timeout).close()
    with urllib.request.urlopen(export_url(base, match), timeout=timeout) as resp:
        body = resp.read().decode()
    out = []
    for line in body.splitlines():
        if line.strip():
            item = json.loads(line)
            out.append(Series(item["metric"], item["values"], item["timestamps"]))
    return out
