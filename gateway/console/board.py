"""What the board shows, read from the running gateway's own state: its active alerts with
their escalation and timeline, and its devices. Plain data; the page words it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from gateway.console.alert_log import AlertLog
from gateway.core.clock import Clock
from gateway.core.config import GatewayConfig, Location
from gateway.core.counters import Counters
from gateway.core.model import Alert, Severity
from gateway.status import StatusBoard
from rules.engine import RuleEngine

RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2, Severity.INFO: 3}


class BrokerLink(Protocol):
    @property
    def connected(self) -> bool: ...


class GatewayState(Protocol):
    """What the board reads of the running gateway (`gateway.supervisor.Gateway`)."""

    @property
    def config(self) -> GatewayConfig: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def rules(self) -> RuleEngine: ...
    @property
    def board(self) -> StatusBoard: ...
    @property
    def link(self) -> BrokerLink: ...
    @property
    def batteries(self) -> dict[str, float] | None: ...
    def upstream_states(self) -> list[dict[str, Any]]: ...


def place(location: Location | None) -> dict[str, Any] | None:
    if location is None or location == Location():
        return None
    return location.model_dump(exclude_none=True)


def alert_view(alert: Alert, log: AlertLog, rules: RuleEngine,
               locations: Mapping[str, Location]) -> dict[str, Any]:
    record = log.records.get(alert.id)
    escalation = rules.escalation(alert.rule, alert.device)
    return {
        "id": alert.id, "rule": alert.rule, "device": alert.device, "kind": alert.kind.value,
        "state": alert.state.value, "severity": alert.severity.value, "since": alert.since,
        "ts": alert.ts, "message": alert.message, "by": alert.by,
        "place": place(locations.get(alert.device)),
        "resolvable": rules.resolvable(alert.rule),
        "escalation": msgspec.to_builtins(escalation) if escalation is not None else None,
        "timeline": msgspec.to_builtins(record.entries) if record is not None else [],
    }


def board(gw: GatewayState, log: AlertLog) -> dict[str, Any]:
    """The active alerts, by severity, then the longest waiting first."""
    locations = {d.id: d.location for d in gw.config.devices}
    alerts = sorted(gw.rules.active(), key=lambda a: (RANK[a.severity], a.since, a.id))
    return {
        "now": gw.clock.now_ms(),
        "site": gw.config.site,
        "broker": gw.link.connected,
        # each outside platform: up, down (retrying) or idle, and its records waiting
        "upstreams": gw.upstream_states(),
        "alerts": [alert_view(a, log, gw.rules, locations) for a in alerts],
    }


def devices(gw: GatewayState) -> list[dict[str, Any]]:
    """Every configured device, offline ones first."""
    now_ms, now = gw.clock.now_ms(), gw.clock.monotonic()
    rejected: dict[str, int] = {}
    for name, labels, value in gw.counters.items():
        source = dict(labels).get("device")
        if source is not None and ("reject" in name or "malformed" in name):
            rejected[source] = rejected.get(source, 0) + value
    rows = []
    for device in gw.config.devices:
        status = gw.board.get(device.id)
        seen = gw.board.last_seen(device.id) if status is not None else None
        rows.append({
            "id": device.id, "kind": device.kind.value, "place": place(device.location),
            "status": status.value if status is not None else "unknown",
            "last_seen": now_ms - round((now - seen) * 1000) if seen is not None else None,
            "rejected": rejected.get(device.id, 0),
            "battery": (gw.batteries or {}).get(device.id),  # %, where the device says
        })
    order = {"offline": 0, "unknown": 1, "online": 2}
    return sorted(rows, key=lambda r: (order[r["status"]], r["id"]))
