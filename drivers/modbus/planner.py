"""Block planning: a device's points merged into as few read requests as the protocol allows.

Points of one function whose address ranges touch or overlap share a request, up to the
per-request limit (the device's max_bits / max_registers). Gaps are never bridged: reading
an address a device does not implement is answered with an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

from drivers.modbus.register_map import BIT_FUNCTIONS, Function, ModbusMap, Point

_FUNCTION_ORDER = get_args(Function)


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: `count` bits or registers of `function` from `address`."""

    function: Function
    address: int
    count: int
    points: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Plan:
    """`fast`: the alarm points' requests; `full`: every point's requests."""

    fast: tuple[Block, ...]
    full: tuple[Block, ...]


def plan_blocks(points: Mapping[str, Point], max_registers: int, max_bits: int
                ) -> tuple[Block, ...]:
    """Requests covering `points`, per function in address order."""
    blocks: list[Block] = []
    for function in _FUNCTION_ORDER:
        limit = max_bits if function in BIT_FUNCTIONS else max_registers
        mine = sorted(((p.address, -p.span, name) for name, p in points.items()
                       if p.function == function))
        start = end = 0
        names: list[str] = []
        for address, negative_span, name in mine:
            stop = address - negative_span
            if names and address <= end and max(end, stop) - start <= limit:
                end = max(end, stop)
                names.append(name)
                continue
            if names:
                blocks.append(Block(function, start, end - start, tuple(names)))
            start, end, names = address, stop, [name]
        if names:
            blocks.append(Block(function, start, end - start, tuple(names)))
    return tuple(blocks)


def plan_map(mapping: ModbusMap) -> Plan:
    """The fast and the full request set of a register map."""
    fast = {name: p for name, p in mapping.points.items() if p.fast}
    return Plan(
        fast=plan_blocks(fast, mapping.max_registers, mapping.max_bits),
        full=plan_blocks(mapping.points, mapping.max_registers, mapping.max_bits),
    )
