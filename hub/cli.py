"""`scgw hub`: set up the city's stream, and run a hub process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from gateway.core.problems import ConfigError
from hub.config import HubConfig, load_hub_config

hub_app = typer.Typer(no_args_is_help=True,
                      help="The city hub: the compounds' stream into the central store.")

HubConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The hub's TOML file.")]
EXIT_CONFIG = 2
EXIT_CLUSTER = 3
LOG_LEVELS = ("debug", "info", "warning", "error")


def _load(file: Path) -> HubConfig:
    try:
        return load_hub_config(file, os.environ)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@hub_app.command("init")
def init(config: HubConfigOption) -> None:
    """Create (or update) the stream, the hubs' durable consumer and the alert bucket."""
    from gateway.city_connection import CityAccessError
    from hub.provision import ProvisionError, provision

    cfg = _load(config)
    try:
        done = asyncio.run(provision(cfg, os.environ))
    except (ProvisionError, CityAccessError, OSError) as exc:
        typer.echo(f"the city's cluster: {exc}", err=True)
        raise typer.Exit(EXIT_CLUSTER) from None
    for line in done:
        typer.echo(line)


@hub_app.command("run")
def run(
    config: HubConfigOption,
    name: Annotated[str | None, typer.Option(
        help="This process's name in logs and in the cluster's connections.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run one hub process in the foreground; SIGTERM or Ctrl-C stops it cleanly."""
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    cfg = _load(config)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from gateway.city_connection import CityAccessError
    from hub.service import HubSetupError

    try:
        asyncio.run(_serve(cfg, name))
    except (HubSetupError, CityAccessError) as exc:
        typer.echo(f"the city's cluster: {exc}", err=True)
        raise typer.Exit(EXIT_CLUSTER) from None


async def _serve(config: HubConfig, name: str | None) -> None:
    from hub.service import Hub

    hub = Hub(config, name=name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, hub.stop)
    await hub.run()
