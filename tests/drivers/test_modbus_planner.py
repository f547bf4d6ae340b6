"""Block planning: few requests, never across a gap, never above the protocol's limits."""

from __future__ import annotations

from typing import Any

from drivers.modbus import Block, ModbusMap, Point, plan_blocks, plan_map
from drivers.profile import ProfileLibrary


def _points(*specs: tuple[str, str, int, dict[str, Any]]) -> dict[str, Point]:
    return {name: Point.model_validate({"function": function, "address": address,
                                        "reading": name, **extra})
            for name, function, address, extra in specs}


def test_contiguous_and_overlapping_points_share_a_request() -> None:
    points = _points(
        ("a", "input_registers", 0, {}),
        ("b", "input_registers", 1, {"datatype": "uint32"}),  # 1..2
        ("c", "input_registers", 3, {}),
        ("d", "input_registers", 3, {"bit": 4}),  # the same register again
        ("e", "input_registers", 2, {}),  # inside b
    )
    assert plan_blocks(points, 125, 2000) == (
        Block("input_registers", 0, 4, ("a", "b", "e", "c", "d")),)


def test_a_gap_is_never_bridged() -> None:
    points = _points(("a", "holding_registers", 0, {}), ("b", "holding_registers", 2, {}))
    assert [(b.address, b.count) for b in plan_blocks(points, 125, 2000)] == [(0, 1), (2, 1)]


def test_functions_are_never_mixed() -> None:
    points = _points(("a", "holding_registers", 0, {}), ("b", "input_registers", 1, {}),
                     ("c", "coils", 0, {}), ("d", "discrete_inputs", 1, {}))
    assert [b.function for b in plan_blocks(points, 125, 2000)] == [
        "coils", "discrete_inputs", "holding_registers", "input_registers"]


def test_requests_respect_the_protocol_limits() -> None:
    registers = _points(*[(f"r{i}", "input_registers", i, {}) for i in range(300)])
    blocks = plan_blocks(registers, 125, 2000)
    assert [(b.address, b.count) for b in blocks] == [(0, 125), (125, 125), (250, 50)]
    bits = _points(*[(f"b{i}", "coils", i, {}) for i in range(4100)])
    assert [b.count for b in plan_blocks(bits, 125, 2000)] == [2000, 2000, 100]


def test_a_devices_own_limit_is_respected() -> None:
    registers = _points(*[(f"r{i}", "input_registers", i, {}) for i in range(40)])
    assert [b.count for b in plan_blocks(registers, 16, 2000)] == [16, 16, 8]


def test_a_32_bit_value_is_never_split() -> None:
    points = _points(("a", "input_registers", 0, {"count": 3}),
                     ("b", "input_registers", 3, {"datatype": "float32"}))
    blocks = plan_blocks(points, 4, 2000)
    assert [(b.address, b.count) for b in blocks] == [(0, 3), (3, 2)]


def test_fast_points_have_their_own_plan() -> None:
    mapping = ModbusMap.model_validate({"points": {
        "alarm": {"function": "discrete_inputs", "address": 0, "fast": True, "on_set": "alarm"},
        "fault": {"function": "discrete_inputs", "address": 1, "on_set": "fault"},
        "tamper": {"function": "discrete_inputs", "address": 2, "fast": True,
                   "on_set": "tamper"},
        "battery": {"function": "input_registers", "address": 0, "reading": "battery_pct"},
    }})
    plan = plan_map(mapping)
    # the fast set has a hole at 1: two requests; the full set reads 0..2 at once
    assert [(b.function, b.address, b.count) for b in plan.fast] == [
        ("discrete_inputs", 0, 1), ("discrete_inputs", 2, 1)]
    assert [(b.function, b.address, b.count) for b in plan.full] == [
        ("discrete_inputs", 0, 3), ("input_registers", 0, 1)]


def test_the_shipped_profiles_need_two_requests_per_full_poll() -> None:
    library = ProfileLibrary()
    for name in ("modbus-door-io", "modbus-manhole-monitor", "modbus-smoke-detector",
                 "modbus-temp-gate"):
        mapping = library.get(name).mapping
        assert isinstance(mapping, ModbusMap)
        assert len(plan_map(mapping).full) == 2, name
