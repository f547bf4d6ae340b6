"""Console sessions, and the limit on login attempts.

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure over TLS); the
gateway keeps only the token's SHA-256, with the user, the session's CSRF token and its
end, in a file beside the accounts, so that a restarted gateway keeps its officers logged in.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections import deque
from pathlib import Path

import msgspec

SESSIONS_SUFFIX = ".sessions"
LOGIN_WINDOW_S = 60.0
LOGIN_FAILURES = 5  # wrong passwords per user, and per address, within the window
MAX_TRACKED = 10_000  # names and addresses remembered for the limit; the oldest go first


class Session(msgspec.Struct, frozen=True, kw_only=True):
    user: str
    csrf: str
    expires_ms: int
    fingerprint: str  # of the password it was opened with
    language: str | None = None


class _File(msgspec.Struct, kw_only=True):
    v: int = 1
    sessions: dict[str, Session] = msgspec.field(default_factory=dict)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Open sessions by token digest; `save` (blocking) writes them for the next start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: dict[str, Session] = {}

    def load(self, now_ms: int) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            stored = msgspec.json.decode(data, type=_File).sessions
        except msgspec.MsgspecError:
            stored = {}  # a damaged file logs everybody out, nothing worse
        self._open = {k: s for k, s in stored.items() if s.expires_ms > now_ms}

    def open(self, user: str, fingerprint: str, now_ms: int, hours: float,
             language: str | None) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(user=user, csrf=secrets.token_urlsafe(32),
                          expires_ms=now_ms + round(hours * 3_600_000),
                          fingerprint=fingerprint, language=language)
        self._open = {k: s for k, s in self._open.items() if s.expires_ms > now_ms}
        self._open[_digest(token)] = session
        return token, session

    def get(self, token: str, now_ms: int) -> Session | None:
        session = self._open.get(_digest(token))
        if session is None or session.expires_ms <= now_ms:
            return None
        return session

    def update(self, token: str, session: Session) -> None:
        if _digest(token) in self._open:
            self._open[_digest(token)] = session

    def close(self, token: str) -> None:
        self._open.pop(_digest(token), None)

    def save(self) -> None:
        """Replace the file atomically, readable by its owner only (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, msgspec.json.encode(_File(sessions=self._open)))
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


class LoginLimit:
    """At most LOGIN_FAILURES wrong passwords a minute per user and per address: beyond,
    an attempt is refused before its password is looked at."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    def refused(self, user: str, address: str, now: float) -> bool:
        return any(key in self._failures and len(self._recent(key, now)) >= LOGIN_FAILURES
                   for key in (f"u:{user}", f"a:{address}"))

    def failed(self, user: str, address: str, now: float) -> None:
        for key in (f"u:{user}", f"a:{address}"):
            self._recent(key, now).append(now)
            self._failures[key] = self._failures.pop(key)  # newest last
        while len(self._failures) > MAX_TRACKED:
            del self._failures[next(iter(self._failures))]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=LOGIN_FAILURES)
        while times and times[0] <= now - LOGIN_WINDOW_S:
            times.popleft()
        return times
