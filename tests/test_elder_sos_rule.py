"""The minimal elder SOS rule: press fires, ack acknowledges, long press resolves."""

from __future__ import annotations

from gateway.kinds import make_event
from gateway.model import AckCommand, AlertState, DeliveryClass, DeviceKind, Severity
from rules.elder_sos import ElderSos


def _rule() -> ElderSos:
    return ElderSos(lambda device: f"{device} (building 3)")


def _press(device: str, ts: int, type_: str = "press") -> object:
    return make_event(DeviceKind.ELDER_BUTTON, device, type_, ts)


def test_press_fires_one_critical_alert_and_suppresses_repeats() -> None:
    rule = _rule()
    event = make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 1000)
    assert event.cls is DeliveryClass.ALARM
    (alert,) = rule.on_event(event)
    assert (alert.state, alert.severity, alert.since, alert.ts) == (
        AlertState.FIRING, Severity.CRITICAL, 1000, 1000)
    assert alert.cause == event.id
    assert "building 3" in alert.message
    assert rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 2000)) == []
    assert rule.suppressed == 1


def test_ack_then_cancel() -> None:
    rule = _rule()
    (fired,) = rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 1000))
    (acked,) = rule.on_ack(AckCommand(id="a", ts=1500, rule="elder.sos", device="e1", by="duty"))
    assert (acked.id, acked.state, acked.by, acked.since) == (
        fired.id, AlertState.ACKNOWLEDGED, "duty", 1000)
    # a second ack changes nothing
    assert rule.on_ack(AckCommand(id="b", ts=1600, rule="elder.sos", device="e1", by="x")) == []
    (resolved,) = rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "cancel", 2000))
    assert (resolved.id, resolved.state, resolved.ts) == (fired.id, AlertState.RESOLVED, 2000)
    assert rule.active() == []


def test_acks_for_other_rules_or_idle_devices_are_ignored() -> None:
    rule = _rule()
    assert rule.on_ack(AckCommand(id="a", ts=1, rule="elder.sos", device="e1", by="x")) == []
    rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 1000))
    assert rule.on_ack(AckCommand(id="a", ts=2, rule="smoke.alarm", device="e1", by="x")) == []
    assert rule.on_event(make_event(DeviceKind.SMOKE, "e1", "alarm", 1000)) == []


def test_state_survives_snapshot_and_restore() -> None:
    rule = _rule()
    rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 1000))
    rule.on_event(make_event(DeviceKind.ELDER_BUTTON, "e2", "press", 1100))
    rule.on_ack(AckCommand(id="a", ts=1200, rule="elder.sos", device="e2", by="duty"))
    restored = _rule()
    restored.restore(rule.snapshot())
    assert restored.active() == rule.active()
    assert restored.on_event(make_event(DeviceKind.ELDER_BUTTON, "e1", "press", 3000)) == []
