"""`python -m fuzz TARGET [--seconds N]`: a long coverage-guided run with atheris."""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz")
    parser.add_argument("target", help="one of the targets in fuzz/targets.py")
    parser.add_argument("--seconds", type=int, default=600, help="how long to run")
    parser.add_argument("--corpus", default=None, help="a directory to keep the corpus in")
    args = parser.parse_args()
    # the libraries first, uninstrumented: coverage is wanted in the gateway's own parsers
    import aiomqtt  # noqa: F401
    import atheris
    import msgspec  # noqa: F401
    import pydantic  # noqa: F401
    import pymodbus  # noqa: F401

    with atheris.instrument_imports(include=["drivers", "gateway", "rules", "fuzz"],
                                    enable_loader_override=False):
        from fuzz.targets import TARGETS
    if args.target not in TARGETS:
        parser.error(f"unknown target {args.target}; known: {', '.join(TARGETS)}")
    argv = [sys.argv[0], f"-max_total_time={args.seconds}", "-print_final_stats=1"]
    if args.corpus:
        from pathlib import Path

        from fuzz.seeds import write_seeds

        write_seeds(args.target, Path(args.corpus))  # real payloads to start from
        argv.append(args.corpus)
    atheris.Setup(argv, TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
