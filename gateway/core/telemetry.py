"""A bounded in-memory buffer for telemetry, read by several sinks at their own pace.

Telemetry is the one class the gateway may lose: when the buffer is full the oldest
reading goes first, and every sink that had not yet taken it counts a drop.
"""

from __future__ import annotations

import itertools
from collections import deque

from gateway.core.counters import Counters
from gateway.core.model import Reading
from gateway.core.waiting import Signal


class TelemetryBuffer:
    """A ring of readings with one read position per consumer."""

    def __init__(self, capacity: int, counters: Counters) -> None:
        self._items: deque[Reading] = deque()
        self._capacity = capacity
        self._first_seq = 1  # sequence number of self._items[0]
        self._positions: dict[str, int] = {}  # last sequence number each consumer took
        self._listeners: dict[str, Signal] = {}
        self._full: list[tuple[str, int, Signal]] = []  # (consumer, size, event)
        self._counters = counters

    def register(self, consumer: str) -> Signal:
        """Start reading from the next reading pushed; returns the consumer's wake-up event."""
        self._positions[consumer] = self._first_seq + len(self._items) - 1
        event = Signal()
        self._listeners[consumer] = event
        return event

    def when_full(self, consumer: str, size: int) -> Signal:
        """An event set when `size` readings or more wait for `consumer` (it clears it)."""
        event = Signal()
        self._full.append((consumer, size, event))
        return event

    def push(self, reading: Reading) -> None:
        if len(self._items) >= self._capacity:
            self._items.popleft()
            evicted = self._first_seq
            self._first_seq += 1
            for consumer, pos in self._positions.items():
                if pos < evicted:
                    self._positions[consumer] = evicted
                    self._counters.inc("dropped", cls="telemetry", reason="buffer_full",
                                       sink=consumer)
        items = self._items
        items.append(reading)
        for event in self._listeners.values():
            if event.armed:  # mostly set already, no one waiting: nothing to do
                event.set()
        if self._full:
            last = self._first_seq + len(items) - 1
            positions = self._positions
            for consumer, size, full in self._full:
                if full.armed and last - positions[consumer] >= size:
                    full.set()

    def peek(self, consumer: str, limit: int) -> tuple[list[Reading], int]:
        """Up to `limit` readings the consumer has not taken, and the position after them."""
        pos = self._positions[consumer]
        start = pos + 1 - self._first_seq
        out = list(itertools.islice(self._items, start, start + limit))
        return out, pos + len(out)

    def take(self, consumer: str, upto: int) -> None:
        """Mark readings up to position `upto` as delivered by the consumer."""
        self._positions[consumer] = max(self._positions[consumer], upto)
        # what every consumer has delivered is not kept: memory follows the real backlog
        done = min(self._positions.values())
        while self._items and self._first_seq <= done:
            self._items.popleft()
            self._first_seq += 1

    def pending(self, consumer: str) -> int:
        return self._first_seq + len(self._items) - 1 - self._positions[consumer]

    def oldest_pending_ts(self, consumer: str) -> int | None:
        """The time (epoch ms) of the oldest reading `consumer` has not taken, if any."""
        index = self._positions[consumer] + 1 - self._first_seq
        return self._items[index].ts if 0 <= index < len(self._items) else None

    def __len__(self) -> int:
        return len(self._items)
