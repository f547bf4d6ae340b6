"""Notification intents: what the engine asks the gateway to deliver, journalled first."""

from __future__ import annotations

import enum

import msgspec

from gateway.model import SCHEMA_VERSION, Severity


class NotifyReason(enum.StrEnum):
    ESCALATION = "escalation"  # a step of the rule's escalation policy came due
    RESOLVED = "resolved"  # the alert ended: tell every group that was told it began


class Notify(msgspec.Struct, frozen=True, kw_only=True, tag="notify", tag_field="rec"):
    """Tell one contact group about an alert.

    `id` is deterministic, `{alert_id}:{step}:{round}` for escalation steps and
    `{alert_id}:resolved:{group}` for the end, so a replayed intent is recognised as the
    same one and delivered once.
    """

    v: int = SCHEMA_VERSION
    id: str
    ts: int
    alert_id: str
    rule: str
    device: str  # the alert's key: a device id, or a place such as building-3
    severity: Severity
    reason: NotifyReason
    step: int
    round: int
    group: str
    targets: tuple[str, ...]  # apprise URLs or mqtt://topic; empty: nobody is set up
    message: str

    @staticmethod
    def step_id(alert_id: str, step: int, round_: int) -> str:
        return f"{alert_id}:{step}:{round_}"

    @staticmethod
    def resolved_id(alert_id: str, group: str) -> str:
        return f"{alert_id}:resolved:{group}"
