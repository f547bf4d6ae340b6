"""Result rows and the table they are printed as (aligned text or Markdown)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.machine import Machine

Value = float | int | str


@dataclass(frozen=True, slots=True)
class Row:
    """One figure: which benchmark, which case, the headline result and what goes with it."""

    bench: str
    case: str
    result: str
    detail: str = ""
    data: Mapping[str, Value] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # for the JSON only (e.g. steps)


_HEADER = ("Benchmark", "Case", "Result", "Detail")


def table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    cells = [(r.bench, r.case, r.result, r.detail) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(_HEADER)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    out = [line(_HEADER), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def machine_text(machine: Machine, *, markdown: bool = False) -> str:
    items = machine.items()
    if markdown:
        return "\n".join(f"- {k}: {v}" for k, v in items)
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in items)
