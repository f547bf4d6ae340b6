"""`scgw sharing`: check the sharing policies, preview what would leave, report what left."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gateway.core.config import GatewayConfig
from gateway.core.problems import ConfigError
from gateway.ops.service import EXIT_CONFIG, EXIT_UNREADABLE, err
from gateway.ops.service import _load as _load
from gateway.ops.service import console as _console

sharing_app = typer.Typer(no_args_is_help=True,
                          help="Sharing with outside platforms: check, preview, report.")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The gateway's TOML file.")]
PREVIEW_KEY = "preview-pseudonym-key-not-the-real-one"
_SINCE = re.compile(r"^(\d+)([dhm])$")
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000}


@sharing_app.command("check")
def check(paths: Annotated[list[Path] | None, typer.Argument(
        help="Policy files or directories of them (default: sharing/).")] = None) -> None:
    """Check sharing policies: every mistake with file and line; a sensitive field in clear
    without a legal basis is refused, naming the field and the rule (exit 2)."""
    from gateway.upstreams.policy import PolicyError, exposures, load_policy, policy_files

    files = [f for p in (paths or [Path("sharing")]) for f in policy_files(p)]
    if not files:
        err().print("no policy files found", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    problems = []
    for file in files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            problems += exc.problems
            continue
        _console().print(f"{file}: OK, {len(policy.rules)} rule(s)", markup=False)
        for rule in policy.rules:
            shown = [f"{e.field} ({e.data_class.value}, {'clear' if e.clear else 'pseudonym'})"
                     for e in exposures(rule)]
            if shown:
                basis = f"; basis {rule.basis_text}" if rule.basis else ""
                _console().print(f"  {rule.id}: personal data {', '.join(shown)}{basis}",
                                 markup=False, soft_wrap=True)
    if problems:
        err().print(f"{len(problems)} problem(s) in the sharing policies", style="bold red",
                    markup=False)
        for problem in sorted(problems):
            err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG)


@sharing_app.command("preview")
def preview(
    config: ConfigOption,
    events: Annotated[Path, typer.Option("--events", help="Records, one JSON per line.")],
    with_rules: Annotated[bool, typer.Option(
        "--with-rules", help="Run the stream through the configured rules: their alerts too.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per upstream.")]
    = False,
) -> None:
    """Show, per upstream, exactly the payloads that would leave for a recorded stream."""
    from gateway.ops.sharing_report import EventsFileError, read_records, with_alerts
    from gateway.ops.sharing_report import preview as make_preview

    cfg = _load(config, secrets=())
    env = dict(os.environ)
    stand_in = [u.name for u in cfg.upstreams
                if u.pseudonym_key_env and u.pseudonym_key_env not in env]
    for upstream in cfg.upstreams:
        if upstream.pseudonym_key_env and upstream.pseudonym_key_env not in env:
            env[upstream.pseudonym_key_env] = f"{PREVIEW_KEY}-{upstream.name}"
    try:
        records = read_records(events)
    except (EventsFileError, OSError) as exc:
        err().print(str(exc), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    if with_rules:
        records = with_alerts(cfg, records)
    shown = make_preview(cfg, records, env)
    if as_json:
        out: dict[str, list[object]] = {u.name: [] for u in cfg.upstreams}
        for item in shown:
            out[item.upstream].append(json.loads(item.payload))
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for upstream in cfg.upstreams:
        mine = [s for s in shown if s.upstream == upstream.name]
        note = " (pseudonyms made with a stand-in key)" if upstream.name in stand_in else ""
        _console().print(f"{upstream.name}: {len(mine)} of {len(records)} record(s) would "
                         f"leave{note}", markup=False, style="bold")
        for item in mine:
            _console().print(f"  [{item.rule}] {item.payload.decode()}", markup=False,
                             soft_wrap=True, highlight=False)


@sharing_app.command("report")
def report(
    config: ConfigOption,
    since: Annotated[str, typer.Option(help="How far back: 30d, 12h, 90m.")] = "30d",
    device: Annotated[str | None, typer.Option(
        help="Only records about this device (or place): what was shared about a resident.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for the records.")] = False,
) -> None:
    """Per upstream, what left: how many records, which kinds, under which policy rules,
    which personal fields and on which legal basis."""
    from gateway.journal_desk import JournalUnreadableError
    from gateway.ops.sharing_report import read_audit, summarise

    match = _SINCE.match(since)
    if match is None:
        raise typer.BadParameter("a number and d, h or m: 30d", param_hint="--since")
    cfg = _config_only(config)  # the audit is read whatever the policies say now
    since_ms = int(time.time() * 1000) - int(match.group(1)) * _UNIT_MS[match.group(2)]
    try:
        rows = read_audit(cfg.journal, since_ms, device)
    except JournalUnreadableError as exc:
        err().print(str(exc), soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_UNREADABLE) from None
    summary = summarise(rows)
    if as_json:
        body: dict[str, object] = {
            "site": cfg.site, "since": since_ms,
            "upstreams": {name: s.as_json() for name, s in summary.items()}}
        if device is not None:
            body["device"] = device
            body["records"] = [{"upstream": r.upstream, "record_id": r.record_id,
                                "rule": r.rule, "kind": r.kind, "type": r.type,
                                "fields": r.fields.split(","),
                                "personal_fields": [p for p in r.personal.split(",") if p],
                                "basis": r.basis, "confirmed": r.at} for r in rows]
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return
    out = _console()
    about = f" about {device}" if device else ""
    out.print(f"shared since {_time(since_ms)}{about}: {len(rows)} record(s) to "
              f"{len(summary)} upstream(s)", markup=False, soft_wrap=True)
    for name, s in summary.items():
        out.print(f"{name}: {s.records} record(s)", style="bold", markup=False)
        out.print(f"  kinds: {_counts(s.kinds)}; types: {_counts(s.types)}", markup=False,
                  soft_wrap=True)
        for rule, n in sorted(s.rules.items()):
            basis = f" (basis {s.bases[rule]})" if rule in s.bases else ""
            out.print(f"  rule {rule}: {n}{basis}", markup=False, soft_wrap=True)
        out.print(f"  personal fields: {_counts(s.personal) or 'none'}", markup=False,
                  soft_wrap=True)
    if device is not None:
        for r in rows:
            out.print(f"  {_time(r.at)} {r.upstream} [{r.rule}] {r.kind} {r.type}: "
                      f"{r.fields}{'; basis ' + r.basis if r.basis else ''}", markup=False,
                      soft_wrap=True)


def _config_only(file: Path) -> GatewayConfig:
    from gateway.config_file import load_config

    try:
        return load_config(file, secrets=())
    except ConfigError as exc:
        err().print(f"{exc.file}: {len(exc.problems)} problem(s)", markup=False)
        for problem in exc.problems:
            err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from exc


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()))


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
