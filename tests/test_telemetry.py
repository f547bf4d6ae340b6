"""The telemetry ring: bounded, oldest dropped first, drops counted per sink."""

from __future__ import annotations

from gateway.core.counters import Counters
from gateway.core.model import DeviceKind, Reading
from gateway.core.telemetry import TelemetryBuffer


def _reading(n: int) -> Reading:
    return Reading(id=str(n), ts=n, kind=DeviceKind.MANHOLE, device="m1", values={"tilt": n})


async def test_slow_consumer_loses_the_oldest_and_counts_them() -> None:
    counters = Counters()
    ring = TelemetryBuffer(3, counters)
    ring.register("fast")
    ring.register("slow")
    ring.push(_reading(1))
    got, upto = ring.peek("fast", 10)
    ring.take("fast", upto)
    assert [r.ts for r in got] == [1]
    for n in range(2, 6):
        ring.push(_reading(n))
    assert len(ring) == 3
    slow, _ = ring.peek("slow", 10)
    assert [r.ts for r in slow] == [3, 4, 5]
    assert counters.get("dropped", cls="telemetry", sink="slow") == 2
    assert counters.get("dropped", cls="telemetry", sink="fast") == 1
    fast, _ = ring.peek("fast", 10)
    assert [r.ts for r in fast] == [3, 4, 5]


async def test_peek_does_not_consume_until_take() -> None:
    ring = TelemetryBuffer(10, Counters())
    wake = ring.register("s")
    ring.push(_reading(1))
    ring.push(_reading(2))
    assert wake.is_set()
    first, upto = ring.peek("s", 1)
    assert [r.ts for r in first] == [1]
    assert ring.pending("s") == 2
    ring.take("s", upto)
    assert ring.pending("s") == 1


async def test_readings_every_sink_delivered_are_not_kept() -> None:
    ring = TelemetryBuffer(100, Counters())
    ring.register("mqtt")
    ring.register("store")
    for n in range(10):
        ring.push(_reading(n))
    _, upto = ring.peek("mqtt", 10)
    ring.take("mqtt", upto)
    assert len(ring) == 10  # the store still needs them
    _, upto = ring.peek("store", 4)
    ring.take("store", upto)
    assert len(ring) == 6
    rest, upto = ring.peek("store", 10)
    assert [r.ts for r in rest] == [4, 5, 6, 7, 8, 9]
    ring.take("store", upto)
    assert len(ring) == 0
    ring.push(_reading(10))
    assert [r.ts for r in ring.peek("mqtt", 10)[0]] == [10]


async def test_a_consumer_reads_on_past_what_it_has_not_taken_yet() -> None:
    """The rules read the next readings while the last ones' commit is under way: they stay
    in the ring, not taken, until it lands; the oldest going for want of room moves the
    reading position on with them."""
    counters = Counters()
    ring = TelemetryBuffer(4, counters)
    ring.register("rules")
    for n in range(1, 4):
        ring.push(_reading(n))
    first, upto = ring.peek("rules", 2)
    after, later = ring.peek("rules", 10, upto)
    assert ([r.ts for r in first], [r.ts for r in after]) == ([1, 2], [3])
    assert ring.pending("rules") == 3  # nothing taken yet
    ring.take("rules", later)
    assert (ring.pending("rules"), len(ring)) == (0, 0)
    for n in range(4, 10):  # two go for want of room, read by nobody
        ring.push(_reading(n))
    behind, _ = ring.peek("rules", 10, later)
    assert [r.ts for r in behind] == [6, 7, 8, 9]
    assert counters.get("dropped", cls="telemetry", sink="rules") == 2
