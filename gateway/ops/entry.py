"""The `scgw` command: `run` without the rest of the command line, every other command (and
`run --help`) through the full CLI (gateway/ops/cli.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.ops.service import LOG_LEVELS, run


def main(argv: Sequence[str] | None = None) -> None:
    """The `scgw` command: `run` here, the rest through the full CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"] and not {"--help", "-h"} & set(args):
        parser = argparse.ArgumentParser(prog="scgw run", add_help=False)
        parser.add_argument("--config", "-c", type=Path, required=True)
        parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
        options = parser.parse_args(args[1:])
        run(options.config, options.log_level)
        return
    from gateway.ops.cli import app

    app(args=args)
