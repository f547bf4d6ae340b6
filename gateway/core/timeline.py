"""Strictly increasing timestamps per device and stream.

A store point is identified by its series and its millisecond, so two records of one
device in the same millisecond would overwrite each other. Nudging the later one a
millisecond forward keeps both, keeps their order, and stays deterministic on replay
because the nudged record is what the journal keeps.
"""

from __future__ import annotations


class Timeline:
    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def stamp(self, key: str, ts: int) -> int:
        """`ts`, or one millisecond after the previous stamp for `key` if that is later."""
        last = self._last.get(key)
        if last is not None and ts <= last:
            ts = last + 1
        self._last[key] = ts
        return ts
