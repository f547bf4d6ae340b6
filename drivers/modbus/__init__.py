"""Modbus RTU and TCP devices: register maps as profile data, one owner task per bus."""

from drivers.modbus.bus import ModbusBusDriver
from drivers.modbus.planner import Block, Plan, plan_blocks, plan_map
from drivers.modbus.register_map import ModbusMap, Point, parse_modbus_map

__all__ = [
    "Block",
    "ModbusBusDriver",
    "ModbusMap",
    "Plan",
    "Point",
    "parse_modbus_map",
    "plan_blocks",
    "plan_map",
]
