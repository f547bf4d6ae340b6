"""The typed model of each device kind: its event types, which are alarms, its readings.

An explicit registry keyed by DeviceKind; each kind is one module of data.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.kinds import access, elder_button, gateway, manhole, smoke, temp_gate
from gateway.core.kinds.base import KindModel, ReadingSpec
from gateway.core.model import DeliveryClass, DeviceEvent, DeviceKind, Scalar, new_id

MODELS: Mapping[DeviceKind, KindModel] = {
    m.kind: m
    for m in (smoke.MODEL, access.MODEL, manhole.MODEL, elder_button.MODEL, temp_gate.MODEL,
              gateway.MODEL)
}

__all__ = ["MODELS", "KindModel", "ReadingSpec", "make_event"]


def make_event(
    kind: DeviceKind, device: str, type_: str, ts: int, fields: dict[str, Scalar] | None = None
) -> DeviceEvent:
    """An event of `kind`; its delivery class follows from the kind's model."""
    model = MODELS[kind]
    if type_ not in model.events:
        raise ValueError(f"{kind} devices have no event type {type_!r}")
    cls = DeliveryClass.ALARM if type_ in model.alarms else DeliveryClass.EVENT
    return DeviceEvent(
        id=new_id(ts), ts=ts, kind=kind, device=device, type=type_, cls=cls, fields=fields or {}
    )
