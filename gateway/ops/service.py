"""Running the gateway: `scgw run`, without the rest of the command line.

The service's own start loads neither typer nor rich (rich only to print a problem): some
4 MiB of resident memory and a tenth of a second of start-up on a Pi (gateway/ops/entry.py
hands `scgw run` here, every other command to the full CLI).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config_file import SECRETS, InvalidConfigError, load_config
from gateway.core.config import GatewayConfig
from gateway.core.problems import ConfigError
from gateway.ops.allocator import give_back, one_arena, settle_heap

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CONFIG = 2
EXIT_UNREADABLE = 3  # the journal could not be read (held by a gateway that does not answer)
LOG_LEVELS = ("debug", "info", "warning", "error")
TRIM_FIRST_S = 3.0  # after start: the broker connection and subscriptions are made by then
TRIM_EVERY_S = 600.0


def console() -> Console:
    """rich's console, loaded at the first output: `run` prints nothing unless it fails."""
    from rich.console import Console

    return Console()


def err() -> Console:
    """The console for errors (stderr)."""
    from rich.console import Console

    return Console(stderr=True)


def _load(file: Path, *, secrets: Collection[str] = SECRETS) -> GatewayConfig:
    """The configuration, its rule files and contacts checked; exit 2 listing every problem.

    Of the environment variables the file names, only those of `secrets` (the command uses
    them) must be set."""
    from rules.tooling import check

    config: GatewayConfig | None = None
    readable: GatewayConfig | None = None
    try:
        config = readable = load_config(file, secrets=secrets)
    except ConfigError as exc:
        err().print(f"{exc.file}: {len(exc.problems)} problem(s)", style="bold red",
                    soft_wrap=True, markup=False)
        for problem in exc.problems:
            err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
        readable = exc.partial if isinstance(exc, InvalidConfigError) else None
    rule_problems = check(*_rule_files(readable)) if readable is not None else []
    if rule_problems:
        _print_rule_problems(rule_problems)
    policy_problems = _policy_problems(readable) if readable is not None else []
    if policy_problems:
        err().print(f"{len(policy_problems)} problem(s) in the sharing policies",
                    style="bold red", soft_wrap=True, markup=False)
        for problem in policy_problems:
            err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
    if config is None or rule_problems or policy_problems:
        raise SystemExit(EXIT_CONFIG)
    return config


def _policy_problems(config: GatewayConfig) -> list[Any]:
    """Every problem of the upstreams' sharing policies (a sensitive field in clear without
    a legal basis among them); policy files that are missing are configuration problems."""
    from gateway.upstreams.policy import PolicyError, load_policy

    problems: list[Any] = []
    for path in sorted({u.policy for u in config.upstreams if u.policy.is_file()}):
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            problems += exc.problems
            continue
        for index, upstream in enumerate(config.upstreams):
            if upstream.policy == path and policy.pseudonymises \
                    and upstream.pseudonym_key_env is None:
                problems.append(f"upstreams[{index}] ({upstream.name}): its policy {path} "
                                "pseudonymises: set pseudonym_key_env to the variable of "
                                "its own key")
    return problems


def _rule_files(config: GatewayConfig) -> tuple[list[Path], Path | None]:
    """The rule files and contacts file to check; missing ones are configuration problems."""
    from rules.loader import rule_sources

    contacts = config.contacts_file
    return ([path for path in rule_sources(config) if path.exists()],
            contacts if contacts is not None and contacts.is_file() else None)


def _print_rule_problems(problems: list[Any]) -> None:
    err().print(f"{len(problems)} problem(s) in the rules", style="bold red", soft_wrap=True,
                markup=False)
    for problem in problems:
        err().print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pymodbus logs every timeout with a hex dump; the drivers count those and log once
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def _serve(config: GatewayConfig) -> None:
    from gateway.supervisor import Gateway, GpioUnavailableError
    from gateway.systemd_notify import reporting_to_systemd

    try:
        gateway = Gateway(config)
    except GpioUnavailableError as exc:
        err().print(str(exc), soft_wrap=True, markup=False)
        raise SystemExit(EXIT_CONFIG) from exc
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:  # SIGHUP: `scgw rules reload`
        task = asyncio.create_task(gateway.reload_rules(), name="gw.rules.reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)

    async def settled() -> None:
        # the start-up's garbage goes back to the kernel once connected and subscribed,
        # and a burst's later on
        await gateway.ready.wait()
        await asyncio.sleep(TRIM_FIRST_S)
        settle_heap()
        while True:
            give_back()
            await asyncio.sleep(TRIM_EVERY_S)

    trimming = asyncio.create_task(settled(), name="gw.allocator")
    try:
        async with reporting_to_systemd(gateway):  # READY, watchdog, STOPPING under systemd
            await gateway.run()
    finally:
        trimming.cancel()


def run(config: Path, log_level: str = "info") -> None:
    """Run the gateway in the foreground; SIGTERM or Ctrl-C stops it cleanly."""
    one_arena()  # before any thread starts
    cfg = _load(config)
    _logging(log_level)
    asyncio.run(_serve(cfg))
