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
