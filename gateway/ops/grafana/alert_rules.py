"""Grafana-managed alert rules over the store: the duty room's backstop to the gateway's own.

The gateway raises and escalates alarms itself; these rules make Grafana show (and, through
its notification policies, send) the two states nobody should miss on the alarm panel: a
critical alarm nobody has acknowledged, and a device that has gone offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.ops.grafana.dashboard import DASHBOARD_UID, FOLDER_UID
from gateway.ops.grafana.queries import CRITICAL_UNACKNOWLEDGED, OFFLINE_DEVICES, InfluxQuery

RULE_GROUP: Final = "scgw"
RULE_GROUP_INTERVAL: Final = "1m"
# Grafana's server-side expressions (reduce, threshold) as a data source
_EXPRESSIONS: Final = {"type": "__expr__", "uid": "__expr__"}


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    uid: str
    title: str
    query: InfluxQuery  # one series per alert instance; no series: nothing to alert about
    # the instance fires when the series' last value is `comparison` `threshold`
    comparison: Literal["gt", "lt"]
    threshold: float
    pending: str  # how long the condition must hold: Grafana's `for`
    severity: str
    summary: str  # Go template over the series' labels
    panel_id: int


ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        uid="scgw-critical-unacknowledged",
        title="Critical alarm not acknowledged",
        query=CRITICAL_UNACKNOWLEDGED,
        comparison="gt", threshold=0,
        pending="0s",  # the gateway has already decided it is an alarm
        severity="critical",
        summary="Critical alarm {{ $labels.rule }} on {{ $labels.device }} is firing and "
                "nobody has acknowledged it",
        panel_id=1,
    ),
    AlertRule(
        uid="scgw-device-offline",
        title="Device offline",
        query=OFFLINE_DEVICES,
        comparison="lt", threshold=0.5,  # online is 0 or 1
        pending="5m",  # a device back within minutes is the gateway's business, not Grafana's
        severity="major",
        summary="{{ $labels.kind }} device {{ $labels.device }} is offline",
        panel_id=4,
    ),
)


def _data(rule: AlertRule, datasource_uid: str) -> list[dict[str, Any]]:
    return [
        {"refId": "A", "queryType": "", "datasourceUid": datasource_uid,
         # the queries read the current state and ignore the range; Grafana needs one
         "relativeTimeRange": {"from": 600, "to": 0},
         "model": {"refId": "A", "query": rule.query.text, "rawQuery": True,
                   "resultFormat": rule.query.result_format, "intervalMs": 1000,
                   "maxDataPoints": 43200}},
        {"refId": "B", "queryType": "", "datasourceUid": "__expr__",
         "relativeTimeRange": {"from": 0, "to": 0},
         "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                   "settings": {"mode": "dropNN"}, "datasource": _EXPRESSIONS.copy()}},
        {"refId": "C", "queryType": "", "datasourceUid": "__expr__",
         "relativeTimeRange": {"from": 0, "to": 0},
         "model": {"refId": "C", "type": "threshold", "expression": "B",
                   "conditions": [{"evaluator": {"type": rule.comparison,
                                                 "params": [rule.threshold]}}],
                   "datasource": _EXPRESSIONS.copy()}},
    ]


def _common(rule: AlertRule, datasource_uid: str) -> dict[str, Any]:
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": _data(rule, datasource_uid),
        "noDataState": "OK",  # no series: no alarm of this kind
        "execErrState": "Error",
        "for": rule.pending,
        "labels": {"source": "scgw", "severity": rule.severity},
        "annotations": {"summary": rule.summary},
        "isPaused": False,
    }


def api_rule(rule: AlertRule, datasource_uid: str) -> dict[str, Any]:
    """The rule for Grafana's alerting provisioning API (/api/v1/provisioning/alert-rules)."""
    common = _common(rule, datasource_uid)
    # the API links a rule to its panel through these two annotations
    annotations = {**common["annotations"], "__dashboardUid__": DASHBOARD_UID,
                   "__panelId__": str(rule.panel_id)}
    return {**common, "annotations": annotations, "orgID": 1, "folderUID": FOLDER_UID,
            "ruleGroup": RULE_GROUP}


def rule_group_file(folder_title: str, datasource_uid: str) -> dict[str, Any]:
    """The rules as an alerting file-provisioning document (provisioning/alerting/)."""
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": RULE_GROUP, "folder": folder_title,
        "interval": RULE_GROUP_INTERVAL,
        "rules": [{**_common(rule, datasource_uid), "dashboardUid": DASHBOARD_UID,
                   "panelId": rule.panel_id} for rule in ALERT_RULES],
    }]}
