"""What a transmission device's units mean for the gateway's devices.

Each component of a fire panel (system address + component address) is a configured smoke
device with its place; its state bits become events on their edges: fire alarm → `alarm`
(alarm class), fault, supervision and shielded → their events, and each bit that clears →
the matching `*_cleared` event. A component whose earlier state is not known (the first
report since the gateway started) raises the bits it has set; a report of no bit at all
(restored) clears all four. A component missing from the table reports on the transmission
device itself, with its address in the fields: a fire alarm is never dropped for want of a
place. The systems' and the transmission device's own faults are faults of the transmission
device; their fire bits repeat what the components report and raise nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from drivers.gb26875.facility import ComponentAnalog, ComponentStatus, SystemStatus
from drivers.gb26875.objects import ComponentAddress
from drivers.gb26875.states import ComponentState, SystemState, TransmitterState, names
from drivers.gb26875.transmitter import TransmitterStatus
from drivers.gb26875.units import Unit
from gateway.core.kinds import MODELS, make_event
from gateway.core.kinds.base import OutOfRangeError
from gateway.core.model import DeviceEvent, DeviceKind, Reading, Scalar, new_id

# component state bit -> (raised, cleared) event types
_EDGES: Final = (
    (ComponentState.FIRE, "alarm", "alarm_cleared"),
    (ComponentState.FAULT, "fault", "fault_cleared"),
    (ComponentState.SUPERVISION, "supervision", "supervision_cleared"),
    (ComponentState.SHIELDED, "shielded", "shielded_cleared"),
)
_WATCHED: Final = ComponentState.FIRE | ComponentState.FAULT | ComponentState.SUPERVISION \
    | ComponentState.SHIELDED
_SYSTEM_FAULTS: Final = (SystemState.FAULT | SystemState.MAIN_POWER_FAULT
                         | SystemState.BACKUP_POWER_FAULT | SystemState.BUS_FAULT)
_TRANSMITTER_FAULTS: Final = (TransmitterState.FAULT | TransmitterState.MAIN_POWER_FAULT
                              | TransmitterState.BACKUP_POWER_FAULT
                              | TransmitterState.CHANNEL_FAULT | TransmitterState.LINE_FAULT)
TEMPERATURE: Final = 3  # analog type: 0.1 °C
_TEMPERATURE: Final = MODELS[DeviceKind.SMOKE].readings["temperature_c"]


@dataclass(frozen=True, slots=True)
class Place:
    """A component's device and where it is."""

    device: str
    building: str | None = None
    floor: int | None = None
    zone: str | None = None

    def fields(self) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        if self.building is not None:
            out["building"] = self.building
        if self.floor is not None:
            out["floor"] = self.floor
        if self.zone is not None:
            out["zone"] = self.zone
        return out


ComponentKey = tuple[int, ComponentAddress]  # system address, component address


def component_key(text: str) -> ComponentKey:
    """`1-3-017` → (1, zone 3 position 17)."""
    system, _, address = text.partition("-")
    return int(system), ComponentAddress.parse(address)


@dataclass(slots=True)
class Decoded:
    events: list[DeviceEvent] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    states: dict[ComponentKey | str, int] = field(default_factory=dict)  # to remember
    unmapped: int = 0  # components reported that the table does not name
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)


@dataclass(slots=True)
class PanelMap:
    """One transmission device: its device id and its components' places."""

    transmitter: str
    places: Mapping[ComponentKey, Place]
    # last known state bits per component (and per system / the device, by name); set
    # only once what they caused is journalled
    known: dict[ComponentKey | str, int] = field(default_factory=dict)

    def decode(self, unit: Unit, now_ms: int) -> Decoded:
        out = Decoded()
        for obj in unit.objects:
            if isinstance(obj, ComponentStatus):
                self._component(obj, now_ms, out)
            elif isinstance(obj, SystemStatus):
                self._faults(f"system-{obj.system_address}", obj.state & _SYSTEM_FAULTS,
                             names(SystemState(obj.state & _SYSTEM_FAULTS)), now_ms, out,
                             {"system_type": obj.system_type,
                              "system_address": obj.system_address})
            elif isinstance(obj, TransmitterStatus):
                faults = obj.state & _TRANSMITTER_FAULTS
                self._faults("transmitter", faults, names(TransmitterState(faults)), now_ms,
                             out, {})
            elif isinstance(obj, ComponentAnalog) and obj.analog_type == TEMPERATURE:
                self._temperature(obj, now_ms, out)
        return out

    def _temperature(self, obj: ComponentAnalog, now_ms: int, out: Decoded) -> None:
        place = self.places.get((obj.system_address, obj.address))
        if place is None:
            return
        try:
            value = _TEMPERATURE.checked("temperature_c", obj.value / 10)
        except OutOfRangeError as exc:
            out.problems.append(("out_of_range", f"component {obj.system_address}-"
                                 f"{obj.address}: {exc}"))
            return
        out.readings.append(Reading(id=new_id(now_ms), ts=now_ms, kind=DeviceKind.SMOKE,
                                    device=place.device, values={"temperature_c": value}))

    def remember(self, decoded: Decoded) -> None:
        """What `decoded` reported is journalled: its states are the known ones now."""
        self.known.update(decoded.states)

    def _component(self, obj: ComponentStatus, now_ms: int, out: Decoded) -> None:
        key = (obj.system_address, obj.address)
        place = self.places.get(key)
        fields: dict[str, Scalar] = {
            "component": f"{obj.system_address}-{obj.address}",
            "component_type": obj.component_type,
            "state": names(ComponentState(obj.state)),
        }
        if obj.description:
            fields["description"] = obj.description
        fields["device_time"] = obj.time.isoformat() or obj.time.to_bytes().hex()
        if place is None:
            out.unmapped += 1
            device = self.transmitter
        else:
            device = place.device
            fields.update(place.fields())
        now = obj.state & _WATCHED
        before = out.states.get(key, self.known.get(key))
        out.states[key] = now
        restored = before is None and not now  # not known before, and nothing set now
        for bit, raised, cleared in _EDGES:
            was = bool(before is not None and before & bit)
            if now & bit and not was:
                out.events.append(make_event(DeviceKind.SMOKE, device, raised, now_ms,
                                             dict(fields)))
            elif not now & bit and (was or restored):
                out.events.append(make_event(DeviceKind.SMOKE, device, cleared, now_ms,
                                             dict(fields)))

    def _faults(self, key: str, faults: int, what: str, now_ms: int, out: Decoded,
                fields: dict[str, Scalar]) -> None:
        before = out.states.get(key, self.known.get(key))
        out.states[key] = faults
        if faults and not before:
            out.events.append(make_event(DeviceKind.SMOKE, self.transmitter, "fault", now_ms,
                                         {**fields, "fault": what}))
        elif not faults and (before is None or before):
            out.events.append(make_event(DeviceKind.SMOKE, self.transmitter, "fault_cleared",
                                         now_ms, fields))
