"""The devices the engine knows: kind and location per device id."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.core.config import GatewayConfig, Location
from gateway.core.model import DeviceKind


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the engine needs to know about a device besides its records."""

    kind: DeviceKind
    location: Location = field(default_factory=Location)


DeviceDirectory = Mapping[str, DeviceInfo]


def directory_from_config(config: GatewayConfig) -> dict[str, DeviceInfo]:
    """The directory for the devices of a gateway configuration."""
    return {d.id: DeviceInfo(d.kind, d.location) for d in config.devices}


class KeyBy(enum.StrEnum):
    """What one alert of a rule stands for: a device, or a place that devices share."""

    DEVICE = "device"
    BUILDING = "building"
    UNIT = "unit"
    FLOOR = "floor"


def alert_key(by: KeyBy, device: str, location: Location) -> str | None:
    """The alert key of `device` under `by`, e.g. `building-3`; None when it has no such place."""
    if by is KeyBy.DEVICE:
        return device
    if location.building is None:
        return None
    building = f"building-{location.building}"
    if by is KeyBy.BUILDING:
        return building
    if by is KeyBy.UNIT:
        return None if location.unit is None else f"{building}-unit-{location.unit}"
    return None if location.floor is None else f"{building}-floor-{location.floor}"
