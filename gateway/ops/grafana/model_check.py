"""A dashboard model checked against Grafana Foundation SDK's types.

The SDK reads a dashboard JSON into its typed models (`Dashboard.from_json`, every panel's
options and field config through its plugin's types) and writes it back. What it does not
know is dropped on the way, and a value of the wrong kind does not read: a model that comes
back other than it went in has a key Grafana does not know, or a value in the wrong place.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from gateway.ops.grafana.influxql import register


class DashboardModelError(ValueError):
    """A dashboard model the SDK's types do not read back as it is; `problems` say where."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def dashboard_problems(model: dict[str, Any]) -> list[str]:
    """Where `model` differs from what the SDK reads of it (JSON paths); none when valid."""
    register_default_plugins()
    register()
    try:
        typed = dm.Dashboard.from_json(model)
        back = json.loads(json.dumps(typed, cls=JSONEncoder))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return [f"/: not a dashboard the SDK reads ({type(exc).__name__}: {exc})"]
    problems: list[str] = []
    _compare(model, back, "", problems)
    return problems


def check_dashboard(model: dict[str, Any]) -> None:
    """Raise DashboardModelError when `model` is not a dashboard of Grafana's types."""
    problems = dashboard_problems(model)
    if problems:
        raise DashboardModelError(problems)


def _compare(sent: Any, read: Any, path: str, problems: list[str]) -> None:
    if isinstance(sent, dict) and isinstance(read, dict):
        for key in sent:
            if key not in read:
                problems.append(f"{path}/{key}: not a key of Grafana's model")
            else:
                _compare(sent[key], read[key], f"{path}/{key}", problems)
        # keys the SDK adds with their defaults are no problem: Grafana assumes them too
    elif isinstance(sent, list) and isinstance(read, list) and len(sent) == len(read):
        for i, (a, b) in enumerate(zip(sent, read, strict=True)):
            _compare(a, b, f"{path}[{i}]", problems)
    elif sent != read or (type(sent) is not type(read) and not _same_number(sent, read)):
        problems.append(f"{path or '/'}: {json.dumps(sent)[:80]} reads as "
                        f"{json.dumps(read)[:80]}")


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool)
            and not isinstance(b, bool) and a == b)
