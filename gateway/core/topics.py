"""The MQTT topic scheme, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.model import DeviceKind

ROOT = "sc"


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one site (`sc/{site}/...`)."""

    site: str

    def telemetry(self, kind: DeviceKind, device: str) -> str:
        return f"{ROOT}/{self.site}/{kind}/{device}/telemetry"

    def event(self, kind: DeviceKind, device: str) -> str:
        return f"{ROOT}/{self.site}/{kind}/{device}/event"

    def status(self, kind: DeviceKind, device: str) -> str:
        return f"{ROOT}/{self.site}/{kind}/{device}/status"

    def alert(self, rule: str, device: str) -> str:
        return f"{ROOT}/{self.site}/alerts/{rule}/{device}"

    def alert_ack(self, rule: str, device: str) -> str:
        return f"{self.alert(rule, device)}/ack"

    @property
    def alert_ack_filter(self) -> str:
        return f"{ROOT}/{self.site}/alerts/+/+/ack"

    @property
    def alerts_filter(self) -> str:
        return f"{ROOT}/{self.site}/alerts/#"

    @property
    def gateway_status(self) -> str:
        return f"{ROOT}/{self.site}/gateway/status"

    def parse_ack(self, topic: str) -> tuple[str, str] | None:
        """(rule, device) of an ack topic, or None when `topic` is not one."""
        parts = topic.split("/")
        if (
            len(parts) != 6
            or parts[0] != ROOT
            or parts[1] != self.site
            or parts[2] != "alerts"
            or parts[5] != "ack"
            or not parts[3]
            or not parts[4]
        ):
            return None
        return parts[3], parts[4]
