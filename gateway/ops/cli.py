"""`scgw`: run the gateway, check a configuration, or watch the demo."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.core.config import GatewayConfig
from gateway.ops.grafana.cli import grafana_app
from gateway.ops.service import EXIT_CONFIG, EXIT_UNREADABLE, LOG_LEVELS, err
from gateway.ops.service import _load as _load
from gateway.ops.service import _logging as _logging
from gateway.ops.service import _print_rule_problems as _print_rule_problems
from gateway.ops.service import _rule_files as _rule_files
from gateway.ops.service import console as _console
from gateway.ops.sharing_cli import sharing_app
from hub.cli import hub_app

if TYPE_CHECKING:
    pass

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Smart-community gateway: devices to MQTT, alerts and a time-series store.")



ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The gateway's TOML file.")]


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        print(f"scgw {version('smart-community-gateway')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    pass


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="The gateway's TOML file.")]) -> None:
    """Validate a configuration file; print every problem with its key path (exit 2)."""
    config = _load(file)
    _console().print(f"{file}: OK, site {config.site}, {len(config.devices)} device(s)")


@app.command()
def run(
    config: ConfigOption,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the gateway in the foreground; SIGTERM or Ctrl-C stops it cleanly."""
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    from gateway.ops.service import run as serve

    serve(config, log_level)


@app.command()
def status(config: ConfigOption) -> None:
    """Show the running gateway's devices, rejected input, backlog and alerts."""
    import time

    from rich.table import Table

    from gateway.status_report import intake_words, read_status, status_path

    cfg = _load(config, secrets=())
    path = status_path(cfg.journal)
    try:
        snap = read_status(path)
    except FileNotFoundError:
        err().print(f"no status at {path}: is the gateway running with this config?")
        raise typer.Exit(1) from None
    out = _console()
    age = time.time() - snap.ts / 1000
    stale = " [bold red](stale: is the gateway running?)[/]" if age > 10 else ""
    out.print(f"site {snap.site}, status of {age:.0f} s ago{stale}; broker "
              f"{'connected' if snap.broker_connected else '[bold red]disconnected[/]'}; "
              f"{snap.active_alerts} active alert(s)")
    if snap.clock_synchronised is False:
        out.print("[bold red]system clock not synchronised[/]: timestamps may be wrong until "
                  "NTP syncs (see `scgw doctor`)")
    out.print(intake_words(snap.intake))
    backlog = Table("sink", "journal backlog", "state")
    for sink, cursor in snap.cursors.items():
        backlog.add_row(sink, str(snap.journal_last_seq - cursor),
                        snap.upstreams.get(sink.removeprefix("upstream:"), ""))
    out.print(backlog)
    rejected: dict[str, dict[str, int]] = {}
    for key, value in snap.counters.items():
        if key.startswith("rejected{"):
            labels = dict(part.split("=", 1) for part in key[9:-1].split(","))
            rejected.setdefault(labels["device"], {})[labels["reason"]] = value
    devices = Table("device", "kind", "transport", "status", "rejected input")
    for d in snap.devices:
        reasons = rejected.get(d["id"], {})
        devices.add_row(d["id"], d["kind"], d["transport"], d["status"],
                        ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) or "-")
    out.print(devices)
    others = {k: v for k, v in snap.counters.items() if not k.startswith("rejected{")}
    if others:
        counters = Table("counter", "value")
        for key, value in others.items():
            counters.add_row(key, str(value))
        out.print(counters)


@app.command()
def doctor(
    config: ConfigOption,
    json_: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each check may take.")] = 5.0,
) -> None:
    """Check broker, store, ports, GPIO, clock, disk and config; a fix for each failure
    (exit 1 if anything failed)."""
    from gateway.ops.doctor import diagnose, failed
    from gateway.ops.doctor.report import print_table, to_json

    findings = asyncio.run(diagnose(config, timeout_s=timeout))
    if json_:
        print(to_json(findings))
    else:
        print_table(findings, _console())
    raise typer.Exit(1 if failed(findings) else 0)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its servers' data.")] = Path(
        ".demo"),
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    log_level: Annotated[str, typer.Option(help="The gateway's log level.")] = "warning",
) -> None:
    """Start a private Mosquitto and VictoriaMetrics and the gateway on simulated devices."""
    from gateway.ops.demo import run_site

    _logging(log_level)
    asyncio.run(run_site(workdir.resolve(), ["elder-sos"], duration, _console(), officer=True,
                         stay=True))


@app.command()
def simulate(
    scenario: Annotated[list[str], typer.Option(
        help="Scenario to play (repeat for several); see --list.")] = [],  # noqa: B006
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios.")] = False,
    workdir: Annotated[Path, typer.Option(help="Where the servers keep their data.")] = Path(
        ".demo"),
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: when the scenarios are over).")] = None,
    ack: Annotated[bool, typer.Option(help="A simulated duty officer acks alerts.")] = False,
    log_level: Annotated[str, typer.Option(help="The gateway's log level.")] = "warning",
) -> None:
    """Play scenarios on a simulated compound: private servers, gateway, devices."""
    from simulators.scenarios import SCENARIOS

    if list_ or not scenario:
        for name, s in SCENARIOS.items():
            alerts = ", ".join(f"{rule} ({key})" for rule, key in s.alerts) or "none"
            _console().print(f"{name:16} {s.summary}\n{'':16} alerts: {alerts}",
                             soft_wrap=True)
        raise typer.Exit(0 if list_ else 2)
    unknown = [s for s in scenario if s not in SCENARIOS]
    if unknown:
        err().print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    from gateway.ops.demo import run_site

    _logging(log_level)
    asyncio.run(run_site(workdir.resolve(), scenario, duration, _console(), officer=ack,
                         stay=False))


rules_app = typer.Typer(no_args_is_help=True, help="Check, test and reload alert rules.")
alerts_app = typer.Typer(no_args_is_help=True, help="List and acknowledge alerts.")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(grafana_app, name="grafana")
app.add_typer(sharing_app, name="sharing")
app.add_typer(hub_app, name="hub")

ContactsOption = Annotated[Path | None, typer.Option(help="A contacts file to check against.")]


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or directories.")],
    contacts: ContactsOption = None,
) -> None:
    """Validate rule files: every problem with file, line and rule id (exit 2)."""
    from rules.tooling import check

    problems = check(paths, contacts)
    if problems:
        _print_rule_problems(problems)
        raise typer.Exit(EXIT_CONFIG)
    _console().print(f"{', '.join(map(str, paths))}: OK")


@rules_app.command("test")
def rules_test(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or directories.")],
    events: Annotated[Path, typer.Option(help="Recorded records, one JSON per line.")],
    contacts: ContactsOption = None,
    restarts: Annotated[bool, typer.Option(
        help="Restore the rules from their saved state before every line.")] = False,
) -> None:
    """Replay recorded events on a simulated clock and print the alert transitions."""
    from rules.problems import RuleError
    from rules.tooling import replay

    try:
        lines = replay(paths, events, contacts, restarts=restarts)
    except RuleError as exc:
        _print_rule_problems(list(exc.problems))
        raise typer.Exit(EXIT_CONFIG) from exc
    for line in lines:
        print(line)


@rules_app.command("reload")
def rules_reload(config: ConfigOption) -> None:
    """Ask the running gateway to reload its rules (it keeps the old ones if invalid)."""
    import os

    snap = _status(_load(config, secrets=()))
    os.kill(snap.pid, signal.SIGHUP)
    _console().print(f"asked gateway (pid {snap.pid}) to reload its rules; see its log")


@alerts_app.command("list")
def alerts_list(config: ConfigOption) -> None:
    """The active alerts of the running gateway."""
    from rich.table import Table

    snap = _status(_load(config, secrets=()))
    table = Table("rule", "device", "state", "severity", "since (UTC)", "message")
    for a in snap.alerts:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(a["since"]) / 1000))
        table.add_row(str(a["rule"]), str(a["device"]), str(a["state"]), str(a["severity"]),
                      since, str(a["message"]))
    _console().print(table)


@alerts_app.command("ack")
def alerts_ack(
    rule: Annotated[str, typer.Argument(help="The rule id, e.g. elder.sos.")],
    device: Annotated[str, typer.Argument(help="The device id or location key.")],
    by: Annotated[str, typer.Option(help="Who acknowledges: shown to everyone.")],
    config: ConfigOption,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the broker and for the gateway's answer.")] = 10.0,
) -> None:
    """Acknowledge a firing alert: sent on MQTT like any duty officer's ack (exit 1 if there
    is no such alert, or the gateway does not confirm it)."""
    from gateway.ops.alert_ack import BrokerUnavailableError, Outcome, acknowledge, broker_address

    cfg = _load(config, secrets={"broker.password_env"})
    try:
        result = asyncio.run(acknowledge(cfg, rule, device, by, timeout_s=timeout))
    except BrokerUnavailableError as exc:
        err().print(str(exc), soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1) from None
    alert = result.alert
    what = f"{rule} on {device}"
    messages = {
        Outcome.ACKNOWLEDGED: f"acknowledged {what} as {by}",
        Outcome.QUEUED: f"acknowledgement of {what} sent; the gateway is offline and applies "
                        "it when it reconnects",
        Outcome.ALREADY: f"{what} is already acknowledged by {alert.by if alert else '?'}: "
                         "nothing sent",
        Outcome.NOT_ACTIVE: f"no active alert {what} at site {cfg.site}"
                            + (" (it is resolved)" if alert else "")
                            + ": nothing sent; `scgw alerts list` shows the active ones",
        Outcome.NO_GATEWAY: f"no gateway of site {cfg.site} has connected to the broker at "
                            f"{broker_address(cfg.broker)}"
                            + (f", or user {cfg.broker.username} may not read its topics"
                               if cfg.broker.username else "") + ": nothing sent",
        Outcome.UNCONFIRMED: f"acknowledgement of {what} sent, but the gateway did not confirm "
                             f"it within {timeout:g} s: see `scgw alerts list`",
    }
    if result.outcome.ok:
        _console().print(messages[result.outcome], soft_wrap=True, markup=False,
                         highlight=False)
    else:
        err().print(messages[result.outcome], soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1)


def _status(config: GatewayConfig) -> Any:
    from gateway.status_report import read_status, status_path

    path = status_path(config.journal)
    try:
        snap = read_status(path)
    except FileNotFoundError:
        err().print(f"no status at {path}: is the gateway running with this config?")
        raise typer.Exit(1) from None
    if time.time() - snap.ts / 1000 > 10:
        err().print(f"the status at {path} is stale: is the gateway running?")
        raise typer.Exit(1)
    return snap


broker_app = typer.Typer(no_args_is_help=True,
                         help="The broker users and ACL a configuration implies.")
app.add_typer(broker_app, name="broker")

ConsoleUserOption = Annotated[str, typer.Option(help="The duty console's broker user.")]


def _broker_users(config: GatewayConfig, console_user: str) -> list[Any]:
    from gateway.ops.broker_acl import BrokerUsersError, broker_users, notify_topics

    try:
        return broker_users(config, console_user, notify_topics(config.contacts_file))
    except BrokerUsersError as exc:
        err().print(f"{len(exc.problems)} problem(s) with the broker users", style="bold red")
        for problem in exc.problems:
            err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from exc


@broker_app.command("users")
def broker_users_command(config: ConfigOption,
                         console_user: ConsoleUserOption = "duty-console") -> None:
    """The broker users the configuration needs: role and name, tab-separated."""
    for user in _broker_users(_load(config, secrets=()), console_user):
        print(f"{user.role}\t{user.name}")


@broker_app.command("acl")
def broker_acl(config: ConfigOption,
               console_user: ConsoleUserOption = "duty-console") -> None:
    """The Mosquitto acl_file for those users, on stdout."""
    from gateway.ops.broker_acl import render_acl

    users = _broker_users(_load(config, secrets=()), console_user)
    print(render_acl(users, source=str(config)), end="")


devices_app = typer.Typer(no_args_is_help=True, help="Set up devices for the gateway.")
hikvision_app = typer.Typer(no_args_is_help=True, help="Hikvision terminals.")
app.add_typer(devices_app, name="devices")
devices_app.add_typer(hikvision_app, name="hikvision")


@hikvision_app.command("setup")
def hikvision_setup(
    device: Annotated[str, typer.Argument(help="The terminal's device id.")],
    config: ConfigOption,
    gateway_host: Annotated[str, typer.Option(
        help="The gateway's address as the terminal reaches it (default: http.host).")] = "",
    admin_user: Annotated[str, typer.Option(help="The terminal's administrator.")] = "admin",
    admin_password_env: Annotated[str, typer.Option(
        help="The environment variable holding the administrator's password.")
    ] = "HIKVISION_ADMIN_PASSWORD",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be sent; send nothing.")] = False,
) -> None:
    """Set the terminal's alarm server to the gateway's push port, and read it back."""
    import os

    from drivers.hikvision.setup import SetupError, apply, setup_request
    from gateway.core.config import HikvisionDevice

    loaded = _load(config, secrets=())
    terminal = next((d for d in loaded.devices if d.id == device), None)
    if not isinstance(terminal, HikvisionDevice) or loaded.http is None:
        err().print(f"{config}: no Hikvision device {device!r} (with an [http] section)",
                    markup=False)
        raise typer.Exit(EXIT_CONFIG)
    host = gateway_host or loaded.http.host
    if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::"):
        err().print(f"http.host is {host}: give --gateway-host, the address the terminal "
                    "reaches the gateway at", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    request = setup_request(terminal, host, loaded.http.port)
    if dry_run:
        print(request.shown())
        return
    password = os.environ.get(admin_password_env)
    if not password:
        err().print(f"set {admin_password_env} to the terminal's administrator password",
                    markup=False)
        raise typer.Exit(EXIT_CONFIG)
    try:
        entry = asyncio.run(apply(request, admin_user, password))
    except (SetupError, OSError) as exc:
        err().print(f"{device}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    print(f"{device}: alarm server set to {entry['ipAddress']}:{entry['portNo']}"
          f"{entry['url']} ({entry['httpAuthenticationMethod']}), read back")
users_app = typer.Typer(no_args_is_help=True,
                        help="The duty console's accounts (officers act, viewers see).")
report_app = typer.Typer(no_args_is_help=True, help="Reports from the gateway's journal.")
app.add_typer(users_app, name="users")
app.add_typer(report_app, name="report")


def _accounts(config: Path) -> Any:
    from gateway.console.accounts import Accounts, users_path

    return Accounts(users_path(_load(config, secrets=())))


def _new_password(name: str) -> str:
    """Asked twice on the terminal, never on the command line (it would stay in the
    shell's history and show in the process list)."""
    import getpass

    from gateway.console.accounts import AccountError, check_password

    password = getpass.getpass(f"password for {name}: ")
    try:
        check_password(password)
    except AccountError as exc:
        err().print(f"refused: {exc}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    if getpass.getpass("the same again: ") != password:
        err().print("refused: the two passwords differ", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    return password


def _account_change(action: Any, *args: Any) -> None:
    from gateway.console.accounts import AccountError

    try:
        action(*args)
    except AccountError as exc:
        err().print(f"refused: {exc}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The login name, e.g. wang.")],
    config: ConfigOption,
    role: Annotated[str, typer.Option(help="officer (sees and acts) or viewer (sees).")],
    language: Annotated[str | None, typer.Option(
        help="zh-CN or en; left out: the browser's language.")] = None,
) -> None:
    """Add an account; its password is asked on the terminal (exit 2 if refused)."""
    from gateway.console.accounts import AccountError, Role, check_name

    accounts = _accounts(config)
    try:
        check_name(name)
        chosen = Role(role)
    except (AccountError, ValueError) as exc:
        reason = exc if isinstance(exc, AccountError) else f"role {role!r}: officer or viewer"
        err().print(f"refused: {reason}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    if name in accounts.users():
        err().print(f"refused: user {name} exists already", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    _account_change(accounts.add, name, chosen, _new_password(name), language)
    _console().print(f"added {name} ({chosen}) to {accounts.path}", markup=False,
                     highlight=False)


@users_app.command("passwd")
def users_passwd(name: Annotated[str, typer.Argument(help="The login name.")],
                 config: ConfigOption) -> None:
    """Give an account a new password (asked on the terminal); its sessions end."""
    accounts = _accounts(config)
    if name not in accounts.users():
        err().print(f"no user {name}", markup=False)
        raise typer.Exit(1)
    _account_change(accounts.passwd, name, _new_password(name))
    _console().print(f"new password for {name}", markup=False, highlight=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The login name.")],
                 config: ConfigOption) -> None:
    """Remove an account; its sessions end at their next request."""
    accounts = _accounts(config)
    _account_change(accounts.remove, name)
    _console().print(f"removed {name}", markup=False, highlight=False)


@users_app.command("list")
def users_list(config: ConfigOption) -> None:
    """The accounts: name, role and language, tab-separated."""
    for name, account in sorted(_accounts(config).users().items()):
        print(f"{name}\t{account.role}\t{account.language or '-'}")


@report_app.command("shift")
def report_shift(
    config: ConfigOption,
    since: Annotated[str, typer.Option(help="How far back the shift goes, e.g. 12h or 90m.")
                     ] = "12h",
) -> None:
    """The shift handover: the alerts of the shift, which are open, who acknowledged what
    and how fast (read from the journal; the gateway may be running)."""
    from gateway.console.report import print_shift
    from gateway.journal_desk import JournalUnreadableError
    from rules.source import parse_duration

    cfg = _load(config, secrets=())
    try:
        back_ms = parse_duration(since)
    except ValueError as exc:
        err().print(f"--since {since}: {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_CONFIG) from None
    try:
        print_shift(cfg.journal, round(time.time() * 1000) - back_ms, _console())
    except JournalUnreadableError as exc:
        err().print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_UNREADABLE) from None


if __name__ == "__main__":
    app()
