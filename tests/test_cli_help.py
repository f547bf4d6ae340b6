"""The command line's help speaks of values, not of Python types; `--version` answers."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway.ops.cli import app

# what a help text shows when it names the Python type instead of the value
_PYTHON_TYPES = re.compile(r"<(str|bool|int|float|path|list\[[^\]]*\])>|\{[a-z_]+\}")


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of a click command (typer's own copy of click) and of its subcommands."""
    found = [path]
    subcommands: dict[str, object] = getattr(command, "commands", {})
    for name, sub in subcommands.items():
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_is_covered() -> None:
    assert {("alerts", "ack"), ("grafana", "export"), ("simulate",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "scgw")
def test_help_shows_no_python_types(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert _PYTHON_TYPES.findall(result.output) == [], result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"scgw {version('smart-community-gateway')}\n"


def test_the_datasource_password_variable_has_one_name(tmp_path: Path) -> None:
    for command in ("export", "provision"):
        help_text = CliRunner().invoke(app, ["grafana", command, "--help"],
                                       terminal_width=200).output
        assert "--datasource-password-env" in help_text
        assert "--password-env" not in help_text.replace("--datasource-password-env", "")
    for option in ("--datasource-password-env", "--password-env"):
        out = tmp_path / option
        result = CliRunner().invoke(app, ["grafana", "export", str(out), "--datasource-user",
                                          "grafana", option, "INFLUX_PW"])
        assert result.exit_code == 0, result.output
        assert "${INFLUX_PW}" in (out / "datasources" / "scgw.yaml").read_text()
