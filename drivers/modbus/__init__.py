"""Modbus RTU and TCP devices: register maps as profile data, one owner task per bus.

The register map and its planner are importable without pymodbus (profiles are checked when
the configuration loads); the bus-owning driver is `drivers.modbus.bus.ModbusBusDriver`.
"""

from drivers.modbus.planner import Block, Plan, plan_blocks, plan_map
from drivers.modbus.register_map import ModbusMap, Point, parse_modbus_map

__all__ = [
    "Block",
    "ModbusMap",
    "Plan",
    "Point",
    "parse_modbus_map",
    "plan_blocks",
    "plan_map",
]
