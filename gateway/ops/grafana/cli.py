"""`scgw grafana`: write the provisioning files, or push everything to a running Grafana."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from gateway.ops.grafana.datasource import DASHBOARDS_PATH, PASSWORD_ENV, InfluxSource

if TYPE_CHECKING:
    from rich.console import Console

grafana_app = typer.Typer(no_args_is_help=True,
                          help="The alarm dashboard: provisioning files, or push to Grafana.")


def _console() -> Console:
    from rich.console import Console

    return Console()


def _err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


DatasourceUrl = Annotated[str, typer.Option(
    help="InfluxDB's URL as Grafana's server reaches it.")]
Database = Annotated[str, typer.Option(
    help="The store's database (store.database in gateway.toml).")]
DatasourceUser = Annotated[str | None, typer.Option(
    help="InfluxDB user, if InfluxDB has authentication on.")]
DatasourceToken = Annotated[bool, typer.Option(
    "--datasource-token",
    help="InfluxDB 2.x/3.x: authenticate with an API token (the secret is the token).")]

_T = TypeVar("_T", str, str | None)

MISSING_CLIENT = ("scgw grafana provision needs grafana-client: install it into the "
                  "gateway's virtualenv (pip install grafana-client, or the package's "
                  "[grafana] extra)")
MISSING_SDK = ("the dashboard is built with grafana-foundation-sdk: install it into the "
               "gateway's virtualenv (the package's [grafana] extra)")
MISSING = {"grafana_client": MISSING_CLIENT, "grafana_foundation_sdk": MISSING_SDK}

# the earlier name of --datasource-password-env, still accepted
DeprecatedPasswordEnv = Annotated[str | None, typer.Option("--password-env", hidden=True)]


def _renamed(old: str | None, new: _T) -> str | _T:
    if old is None:
        return new
    _err().print("--password-env is deprecated: use --datasource-password-env", markup=False)
    return old


def _source(url: str, database: str, user: str | None, token: bool) -> InfluxSource:
    if user and token:
        _err().print("--datasource-user and --datasource-token exclude each other: InfluxDB "
                     "1.x takes a user and password, 2.x/3.x a token", markup=False)
        raise typer.Exit(2)
    return InfluxSource(url=url, database=database, user=user, token=token)


def _missing(exc: ModuleNotFoundError) -> NoReturn:
    """Exit with what to install when `exc` is a missing optional library, else re-raise."""
    message = MISSING.get((exc.name or "").partition(".")[0])
    if message is None:
        raise exc
    _err().print(message, markup=False, soft_wrap=True, highlight=False)
    raise typer.Exit(2) from None


@grafana_app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(
        help="Grafana's provisioning directory, e.g. /etc/grafana/provisioning.")],
    datasource_url: DatasourceUrl = "http://localhost:8086",
    database: Database = "scgw",
    datasource_user: DatasourceUser = None,
    datasource_token: DatasourceToken = False,
    datasource_password_env: Annotated[str, typer.Option(
        help="With --datasource-user or --datasource-token: the environment variable "
             "Grafana reads the password or token from.")] = PASSWORD_ENV,
    password_env: DeprecatedPasswordEnv = None,
    dashboards_path: Annotated[str, typer.Option(
        help="Where Grafana finds the dashboard JSON (written under DIRECTORY/dashboards/"
             "scgw/).")] = DASHBOARDS_PATH,
) -> None:
    """Write file provisioning: data source, dashboard provider, dashboard, alert rules."""
    try:
        from gateway.ops.grafana.files import provisioning_files, write_files
    except ModuleNotFoundError as exc:
        _missing(exc)

    source = _source(datasource_url, database, datasource_user, datasource_token)
    files = provisioning_files(source, dashboards_path=dashboards_path,
                               password_env=_renamed(password_env, datasource_password_env))
    for path in write_files(directory, files):
        _console().print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)


@grafana_app.command("provision")
def provision(
    url: Annotated[str, typer.Option(help="Grafana's URL, e.g. http://localhost:3000.")],
    token: Annotated[str, typer.Option(
        envvar="SCGW_GRAFANA_TOKEN",
        help="A service account token with the Admin role (or set SCGW_GRAFANA_TOKEN).")],
    datasource_url: DatasourceUrl = "http://localhost:8086",
    database: Database = "scgw",
    datasource_user: DatasourceUser = None,
    datasource_token: DatasourceToken = False,
    datasource_password_env: Annotated[str | None, typer.Option(
        help="With --datasource-user or --datasource-token: the environment variable "
             "holding the password or token.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 10.0,
    password_env: DeprecatedPasswordEnv = None,
) -> None:
    """Create or update the data source, folder, dashboard and alert rules in Grafana."""
    try:
        from gateway.ops.grafana.provision import ProvisionError, connect
        from gateway.ops.grafana.provision import provision as push
    except ModuleNotFoundError as exc:
        _missing(exc)
    datasource_password_env = _renamed(password_env, datasource_password_env)
    password = None
    if datasource_password_env is not None:
        password = os.environ.get(datasource_password_env)
        if password is None:
            _err().print(f"--datasource-password-env: {datasource_password_env} is not set",
                         markup=False)
            raise typer.Exit(2)
    source = _source(datasource_url, database, datasource_user, datasource_token)
    try:
        steps = push(connect(url, token, timeout), url, source, password)
    except ProvisionError as exc:
        _err().print(str(exc), style="bold red", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1) from exc
    out = _console()
    for step in steps:
        out.print(f"{step.what}: {step.outcome}", highlight=False, markup=False)
    out.print(f"Grafana at {url} is provisioned.", highlight=False, soft_wrap=True,
              markup=False)
