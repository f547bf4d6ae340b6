"""Per-kind facts the drivers share: which event types are alarms."""

from __future__ import annotations

from types import MappingProxyType

from gateway.model import DeliveryClass, DeviceEvent, DeviceKind, Scalar, new_id

ALARM_EVENTS = MappingProxyType({
    DeviceKind.SMOKE: frozenset({"alarm", "fire"}),
    DeviceKind.ACCESS: frozenset({"forced_open", "duress"}),
    DeviceKind.MANHOLE: frozenset({"open", "displaced", "gas"}),
    DeviceKind.ELDER_BUTTON: frozenset({"press"}),
    DeviceKind.TEMP_GATE: frozenset({"fever"}),
})


def make_event(
    kind: DeviceKind, device: str, type_: str, ts: int, fields: dict[str, Scalar] | None = None
) -> DeviceEvent:
    cls = DeliveryClass.ALARM if type_ in ALARM_EVENTS[kind] else DeliveryClass.EVENT
    return DeviceEvent(
        id=new_id(ts), ts=ts, kind=kind, device=device, type=type_, cls=cls, fields=fields or {}
    )
