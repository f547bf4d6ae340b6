"""Application data units: a type flag, an object count, then the objects (8.1, 8.3).

`decode_unit` reads the application data of a frame into a `Unit` of typed objects, or
raises UnitError naming what does not fit (`unknown_type` for a type this codec does not
know: the frame is still well formed, and is answered like any other).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from drivers.gb26875.downstream import (
    ClockSync,
    ComponentQuery,
    DutyCheck,
    SystemQuery,
    SystemRecordsQuery,
    TransmitterQuery,
    TransmitterRecordsQuery,
)
from drivers.gb26875.facility import (
    ComponentAnalog,
    ComponentConfiguration,
    ComponentStatus,
    SystemConfiguration,
    SystemOperationRecord,
    SystemSoftware,
    SystemStatus,
    SystemTime,
)
from drivers.gb26875.objects import UnitError
from drivers.gb26875.transmitter import (
    TransmitterConfiguration,
    TransmitterOperationRecord,
    TransmitterSoftware,
    TransmitterStatus,
    TransmitterTime,
)


class UnitType(enum.IntEnum):
    SYSTEM_STATUS = 1
    COMPONENT_STATUS = 2
    COMPONENT_ANALOG = 3
    SYSTEM_OPERATION = 4
    SYSTEM_SOFTWARE = 5
    SYSTEM_CONFIGURATION = 6
    COMPONENT_CONFIGURATION = 7
    SYSTEM_TIME = 8
    TRANSMITTER_STATUS = 21
    TRANSMITTER_OPERATION = 24
    TRANSMITTER_SOFTWARE = 25
    TRANSMITTER_CONFIGURATION = 26
    TRANSMITTER_TIME = 28
    READ_SYSTEM_STATUS = 61
    READ_COMPONENT_STATUS = 62
    READ_COMPONENT_ANALOG = 63
    READ_SYSTEM_OPERATIONS = 64
    READ_SYSTEM_SOFTWARE = 65
    READ_SYSTEM_CONFIGURATION = 66
    READ_COMPONENT_CONFIGURATION = 67
    READ_SYSTEM_TIME = 68
    READ_TRANSMITTER_STATUS = 81
    READ_TRANSMITTER_OPERATIONS = 84
    READ_TRANSMITTER_SOFTWARE = 85
    READ_TRANSMITTER_CONFIGURATION = 86
    READ_TRANSMITTER_TIME = 88
    INITIALISE_TRANSMITTER = 89
    SYNC_CLOCK = 90
    DUTY_CHECK = 91


InfoObject = (SystemStatus | ComponentStatus | ComponentAnalog | SystemOperationRecord
              | SystemSoftware | SystemConfiguration | ComponentConfiguration | SystemTime
              | TransmitterStatus | TransmitterOperationRecord | TransmitterSoftware
              | TransmitterConfiguration | TransmitterTime | SystemQuery | ComponentQuery
              | SystemRecordsQuery | TransmitterQuery | TransmitterRecordsQuery | ClockSync
              | DutyCheck)


OBJECTS: Final[dict[UnitType, type[InfoObject]]] = {
    UnitType.SYSTEM_STATUS: SystemStatus,
    UnitType.COMPONENT_STATUS: ComponentStatus,
    UnitType.COMPONENT_ANALOG: ComponentAnalog,
    UnitType.SYSTEM_OPERATION: SystemOperationRecord,
    UnitType.SYSTEM_SOFTWARE: SystemSoftware,
    UnitType.SYSTEM_CONFIGURATION: SystemConfiguration,
    UnitType.COMPONENT_CONFIGURATION: ComponentConfiguration,
    UnitType.SYSTEM_TIME: SystemTime,
    UnitType.TRANSMITTER_STATUS: TransmitterStatus,
    UnitType.TRANSMITTER_OPERATION: TransmitterOperationRecord,
    UnitType.TRANSMITTER_SOFTWARE: TransmitterSoftware,
    UnitType.TRANSMITTER_CONFIGURATION: TransmitterConfiguration,
    UnitType.TRANSMITTER_TIME: TransmitterTime,
    UnitType.READ_SYSTEM_STATUS: SystemQuery,
    UnitType.READ_COMPONENT_STATUS: ComponentQuery,
    UnitType.READ_COMPONENT_ANALOG: ComponentQuery,
    UnitType.READ_SYSTEM_OPERATIONS: SystemRecordsQuery,
    UnitType.READ_SYSTEM_SOFTWARE: SystemQuery,
    UnitType.READ_SYSTEM_CONFIGURATION: SystemQuery,
    UnitType.READ_COMPONENT_CONFIGURATION: ComponentQuery,
    UnitType.READ_SYSTEM_TIME: SystemQuery,
    UnitType.READ_TRANSMITTER_STATUS: TransmitterQuery,
    UnitType.READ_TRANSMITTER_OPERATIONS: TransmitterRecordsQuery,
    UnitType.READ_TRANSMITTER_SOFTWARE: TransmitterQuery,
    UnitType.READ_TRANSMITTER_CONFIGURATION: TransmitterQuery,
    UnitType.READ_TRANSMITTER_TIME: TransmitterQuery,
    UnitType.INITIALISE_TRANSMITTER: TransmitterQuery,
    UnitType.SYNC_CLOCK: ClockSync,
    UnitType.DUTY_CHECK: DutyCheck,
}


@dataclass(frozen=True, slots=True)
class Unit:
    type: UnitType
    objects: tuple[InfoObject, ...]

    def encode(self) -> bytes:
        """The application data; ValueError if an object is not of the unit's type or
        there are more than 255 of them."""
        want = OBJECTS[self.type]
        if len(self.objects) > 255:
            raise ValueError(f"{len(self.objects)} objects in one unit, more than 255")
        for obj in self.objects:
            if not isinstance(obj, want):
                raise ValueError(f"a {type(obj).__name__} in a unit of type {self.type.name}")
        return bytes((self.type, len(self.objects))) + b"".join(o.write() for o in self.objects)


def decode_unit(data: bytes) -> Unit:
    """The unit in a frame's application data (not empty: an empty one is a heartbeat)."""
    if len(data) < 2:
        raise UnitError("truncated_unit", f"{len(data)} byte(s) of application data, a unit "
                        "starts with its type and object count")
    try:
        kind = UnitType(data[0])
    except ValueError:
        raise UnitError("unknown_type", f"application data unit type {data[0]}") from None
    cls = OBJECTS[kind]
    count = data[1]
    at = 2
    objects = []
    for n in range(count):
        size = cls.SIZE if cls.SIZE is not None else cls.span(data, at)
        if at + size > len(data):
            raise UnitError("truncated_unit", f"object {n + 1} of {count} of type {kind.name} "
                            f"needs {size} bytes at offset {at}, the data has {len(data)}")
        objects.append(cls.read(data, at))
        at += size
    if at != len(data):
        raise UnitError("trailing_bytes", f"{len(data) - at} byte(s) after the {count} "
                        f"object(s) of type {kind.name}")
    return Unit(kind, tuple(objects))
