"""Push the data source, folder, dashboard and alert rules to a running Grafana.

Every step creates what is missing and overwrites what exists, matched by uid, so running
it again updates in place and never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, cast

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from gateway.ops.grafana.alert_rules import ALERT_RULES, api_rule
from gateway.ops.grafana.dashboard import DASHBOARD_UID, FOLDER_TITLE, FOLDER_UID, dashboard_model
from gateway.ops.grafana.datasource import DATASOURCE_UID, InfluxSource, datasource_model

T = TypeVar("T")


class ProvisionError(Exception):
    """Grafana could not be reached or refused a step; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did, e.g. ("data source scgw-influxdb", "created")."""

    what: str
    outcome: str


# the parts of grafana-client's API used here, typed (the library's methods are not)
class _Datasources(Protocol):
    def get_datasource_by_uid(self, datasource_uid: str) -> Any: ...
    def create_datasource(self, datasource: dict[str, Any]) -> Any: ...
    def update_datasource_by_uid(self, datasource_uid: str, datasource: dict[str, Any]
                                 ) -> Any: ...


class _Folders(Protocol):
    def get_folder(self, uid: str) -> Any: ...
    def create_folder(self, title: str, uid: str | None = None) -> Any: ...


class _Dashboards(Protocol):
    def update_dashboard(self, dashboard: dict[str, Any]) -> Any: ...


class _AlertRules(Protocol):
    def get_alertrule(self, alertrule_uid: str) -> Any: ...
    def create_alertrule(self, alertrule: dict[str, Any]) -> Any: ...
    def update_alertrule(self, alertrule_uid: str, alertrule: dict[str, Any]) -> Any: ...


class Grafana(Protocol):
    datasource: _Datasources
    folder: _Folders
    dashboard: _Dashboards
    alertingprovisioning: _AlertRules


def connect(url: str, token: str, timeout_s: float = 10.0) -> Grafana:
    """A client for the Grafana at `url` (with any sub-path) using a service account token."""
    # the client appends "api" to the URL's path as is: a sub-path needs its final slash
    return cast(Grafana, GrafanaApi.from_url(url.rstrip("/") + "/", credential=token,
                                             timeout=timeout_s))


def provision(grafana: Grafana, url: str, source: InfluxSource, password: str | None = None
              ) -> list[Step]:
    """Data source, folder, dashboard, alert rules, in this order (each needs the one before).

    `url` is only used in error messages. Raises ProvisionError at the first failing step.
    """
    def call(what: str, fn: Callable[[], T]) -> T:
        return _call(url, what, fn)

    datasource = datasource_model(source, password)
    steps = [
        _upsert(call, f"data source {DATASOURCE_UID}",
                get=partial(grafana.datasource.get_datasource_by_uid, DATASOURCE_UID),
                create=partial(grafana.datasource.create_datasource, datasource),
                update=partial(grafana.datasource.update_datasource_by_uid, DATASOURCE_UID,
                               datasource)),
        _upsert(call, f"folder {FOLDER_UID}",
                get=partial(grafana.folder.get_folder, FOLDER_UID),
                create=partial(grafana.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID),
                update=None),
    ]
    # no id: Grafana matches the dashboard by uid and overwrites it
    dashboard = {**dashboard_model(DATASOURCE_UID), "id": None}
    saved = call(f"saving the dashboard {DASHBOARD_UID}", partial(
        grafana.dashboard.update_dashboard,
        {"dashboard": dashboard, "folderUid": FOLDER_UID, "overwrite": True,
         "message": "scgw grafana provision"}))
    version = saved.get("version") if isinstance(saved, dict) else None
    steps.append(Step(f"dashboard {DASHBOARD_UID}",
                      "saved" if version is None else f"saved (version {version})"))
    rules = grafana.alertingprovisioning
    for rule in ALERT_RULES:
        body = api_rule(rule, DATASOURCE_UID)
        steps.append(_upsert(call, f"alert rule {rule.uid}",
                             get=partial(rules.get_alertrule, rule.uid),
                             create=partial(rules.create_alertrule, body),
                             update=partial(rules.update_alertrule, rule.uid, body)))
    return steps


def _upsert(call: Callable[[str, Callable[[], Any]], Any], name: str, *,
            get: Callable[[], Any], create: Callable[[], Any],
            update: Callable[[], Any] | None) -> Step:
    """Create `name` if Grafana has no such uid, else update it (or leave it)."""
    if call(f"looking up the {name}", partial(_exists, get)):
        if update is None:
            return Step(name, "exists")
        call(f"updating the {name}", update)
        return Step(name, "updated")
    call(f"creating the {name}", create)
    return Step(name, "created")


def _exists(get: Callable[[], Any]) -> bool:
    try:
        get()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


def _call(url: str, what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except GrafanaUnauthorizedError as exc:
        raise ProvisionError(
            f"Grafana at {url} refused the token (401 Unauthorized) while {what}: pass a "
            "valid service account token (Administration > Users and access > Service "
            "accounts) with --token or SCGW_GRAFANA_TOKEN") from exc
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise ProvisionError(
                f"Grafana at {url} forbade {what} (403 Forbidden): the token's service "
                "account needs the Admin role to manage data sources, folders and alert "
                "rules") from exc
        hint = (" (is --url the address of Grafana, with its sub-path if it has one?)"
                if exc.status_code == 404 else "")
        raise ProvisionError(f"Grafana at {url} answered {exc.status_code} while {what}: "
                             f"{str(exc.message).strip()}{hint}") from exc
    except GrafanaTimeoutError as exc:
        raise ProvisionError(f"Grafana at {url} did not answer in time while {what}: "
                             f"{exc.message}") from exc
    except GrafanaException as exc:  # 5xx, or the connection broke mid-request
        raise ProvisionError(f"Grafana at {url} failed while {what}: {exc.message}") from exc
    except ValueError as exc:  # an answer that is not JSON
        raise ProvisionError(f"{url} answered {what} with something that is not Grafana's "
                             f"JSON: is the URL that of Grafana? ({exc})") from exc
    except OSError as exc:  # refused, unknown host, TLS
        raise ProvisionError(f"cannot reach Grafana at {url} while {what}: {_reason(exc)}; "
                             "is Grafana running and is --url right (scheme, host, port)?"
                             ) from exc


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason (e.g. "Connection refused"), not the client's wrapping."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return str(exc)
