"""`scgw users`: accounts with argon2 hashes, passwords asked on the terminal and refused
when empty or short; no account exists until one is added."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.console.accounts import MIN_PASSWORD, Accounts, Role
from gateway.ops.cli import app

GOOD = "a-long-enough-password"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    file = tmp_path / "gateway.toml"
    file.write_text(f"""site = "c1"
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
[console]
port = 8088
""")
    return file


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the person types at each password prompt, in order."""
    answers: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    yield answers
    assert answers == [], "a prompt was not asked"


def _scgw(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("password", ["", "x", "x" * (MIN_PASSWORD - 1)])
def test_users_add_refuses_an_empty_or_short_password(config: Path, typed: list[str],
                                                      password: str) -> None:
    typed.append(password)
    code, output = _scgw("users", "add", "wang", "--role", "officer", "--config", str(config))
    assert code == 2
    assert "refused" in output
    assert not (config.parent / "console-users.json").exists()


def test_users_add_refuses_two_different_passwords(config: Path, typed: list[str]) -> None:
    typed += [GOOD, GOOD + "!"]
    code, output = _scgw("users", "add", "wang", "--role", "officer", "--config", str(config))
    assert (code, "differ" in output) == (2, True)


def test_add_list_passwd_remove(config: Path, typed: list[str]) -> None:
    typed += [GOOD, GOOD]
    code, output = _scgw("users", "add", "wang", "--role", "officer", "--config", str(config))
    assert code == 0, output
    typed += [GOOD, GOOD]
    code, output = _scgw("users", "add", "li", "--role", "viewer", "--language", "en",
                         "--config", str(config))
    assert code == 0, output
    users = config.parent / "console-users.json"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert GOOD not in users.read_text()
    assert "$argon2id$" in users.read_text()
    code, output = _scgw("users", "list", "--config", str(config))
    assert output.splitlines() == ["li\tviewer\ten", "wang\tofficer\t-"]

    accounts = Accounts(users)
    assert accounts.verify("wang", GOOD) is not None
    assert accounts.verify("wang", GOOD + "x") is None
    assert accounts.verify("nobody", GOOD) is None
    typed += ["another-long-password"] * 2
    assert _scgw("users", "passwd", "wang", "--config", str(config))[0] == 0
    assert accounts.verify("wang", GOOD) is None
    account = accounts.verify("wang", "another-long-password")
    assert account is not None
    assert account.role is Role.OFFICER

    assert _scgw("users", "remove", "li", "--config", str(config))[0] == 0
    assert _scgw("users", "remove", "li", "--config", str(config))[0] == 2
    assert list(Accounts(users).users()) == ["wang"]


def test_users_add_refuses_a_bad_name_or_role(config: Path, typed: list[str]) -> None:
    assert _scgw("users", "add", "wang li", "--role", "officer", "--config", str(config))[0] == 2
    assert _scgw("users", "add", "wang", "--role", "admin", "--config", str(config))[0] == 2
