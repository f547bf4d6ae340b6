"""Console accounts: a name, a role and an argon2 hash of the password, in a file of their own.

There is no default account and no default password: `scgw users add` creates each one. The
file sits beside the journal (or at `console.users_file`), readable by its owner only, and
is replaced atomically; the gateway reads it again whenever it changed, so an account added,
removed or given a new password counts at the next request without a restart.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import threading
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.core.config import GatewayConfig

USERS_FILE = "console-users.json"
MIN_PASSWORD = 10  # characters: a duty office's shared terminal is no place for short ones
MAX_PASSWORD = 256
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
LANGUAGES = ("zh-CN", "en")

_hasher = PasswordHasher()  # argon2id, RFC 9106's second recommendation (64 MiB, t=3)
# checked against for unknown names, so that a wrong name costs what a wrong password does
_DUMMY = _hasher.hash("not a password of anyone")


class Role(enum.StrEnum):
    OFFICER = "officer"  # sees and acts: acknowledges, writes notes
    VIEWER = "viewer"  # sees only


class Account(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    hash: str
    language: str | None = None

    @property
    def fingerprint(self) -> str:
        """Changes with the password: a session opened with an older one ends."""
        return hashlib.sha256(self.hash.encode()).hexdigest()[:16]


class _File(msgspec.Struct, kw_only=True):
    v: int = 1
    users: dict[str, Account] = msgspec.field(default_factory=dict)


class AccountError(ValueError):
    """An account that cannot be added or changed as asked; the message says why."""


def users_path(config: GatewayConfig) -> Path:
    """Where the accounts of `config`'s console are kept."""
    console = config.console
    if console is not None and console.users_file is not None:
        return console.users_file
    return config.journal.path.parent / USERS_FILE


def check_password(password: str) -> None:
    if not password:
        raise AccountError("the password is empty")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password has {len(password)} characters; at least "
                           f"{MIN_PASSWORD} are needed")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is longer than {MAX_PASSWORD} characters")


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise AccountError(f"{name!r} is not a user name: 1 to 32 letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit")


class Accounts:
    """The accounts in `path`; blocking (file and argon2): call from a thread in the gateway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, Account] = {}

    def users(self) -> dict[str, Account]:
        """The accounts as the file has them now."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._users = None, {}
                return {}
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                try:
                    data = self.path.read_bytes()
                    self._users = msgspec.json.decode(data, type=_File).users if data else {}
                except (OSError, msgspec.MsgspecError) as exc:
                    raise AccountError(f"cannot read the accounts in {self.path}: {exc}") \
                        from exc
                self._stamp = stamp
            return dict(self._users)

    def get(self, name: str) -> Account | None:
        return self.users().get(name)

    def verify(self, name: str, password: str) -> Account | None:
        """The account when `password` is its password; None otherwise (same cost either way)."""
        account = self.get(name)
        try:
            _hasher.verify(account.hash if account else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        return account

    def add(self, name: str, role: Role, password: str, language: str | None = None) -> None:
        check_name(name)
        check_password(password)
        _check_language(language)
        users = self.users()
        if name in users:
            raise AccountError(f"user {name} exists already; `scgw users passwd` changes "
                               "a password")
        users[name] = Account(role=role, hash=_hasher.hash(password), language=language)
        self._save(users)

    def passwd(self, name: str, password: str) -> None:
        check_password(password)
        users = self.users()
        account = users.get(name)
        if account is None:
            raise AccountError(f"no user {name}")
        users[name] = msgspec.structs.replace(account, hash=_hasher.hash(password))
        self._save(users)

    def remove(self, name: str) -> None:
        users = self.users()
        if users.pop(name, None) is None:
            raise AccountError(f"no user {name}")
        self._save(users)

    def _save(self, users: dict[str, Account]) -> None:
        """Replace the file atomically, readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, msgspec.json.encode(_File(users=dict(sorted(users.items())))))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        with self._lock:
            self._stamp = None


def _check_language(language: str | None) -> None:
    if language is not None and language not in LANGUAGES:
        raise AccountError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
