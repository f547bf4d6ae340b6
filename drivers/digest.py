"""HTTP digest authentication (RFC 7616, qop=auth, MD5 and SHA-256), both sides.

aiohttp has no digest authentication. Hikvision terminals send their pushes with it and
answer their configuration API only through it; Dahua terminals serve their event stream
only through it. `DigestClient` answers a server's challenge; `DigestVerifier` challenges
a device and checks what it sends back.

A server nonce is self-contained (its issue time, random bytes and an HMAC of both): it
is valid for `nonce_lifetime_s`, after which the device is told `stale` and answers the new
challenge without asking anyone for the password again. What is kept is the highest nonce
count (`nc`) accepted per nonce while it is valid: a captured `Authorization` header sent
again carries a count already used, and is refused, so a request cannot be replayed
(qop=auth does not cover the body: a replay with another body would pass otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}


class DigestError(ValueError):
    """A challenge or an Authorization header that is not usable digest."""


def parse_params(header: str, scheme: str = "Digest") -> dict[str, str]:
    """The parameters of a `Digest k=v, k="v"` header; DigestError if it is not one."""
    given, _, rest = header.strip().partition(" ")
    if given.lower() != scheme.lower():
        raise DigestError(f"not a {scheme} header")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            raise DigestError(f"cannot read the parameters at character {pos}")
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
        pos = match.end()
    return params


def response(algorithm: str, username: str, realm: str, password: str, method: str,
             uri: str, nonce: str, nc: str, cnonce: str, qop: str) -> str:
    """The `response` of RFC 7616 section 3.4.1 (qop=auth, or none for RFC 2069 servers)."""
    digest = _HASHES.get(algorithm.upper())
    if digest is None:
        raise DigestError(f"algorithm {algorithm} is not supported (MD5, SHA-256)")
    ha1 = digest(f"{username}:{realm}:{password}".encode())
    ha2 = digest(f"{method}:{uri}".encode())
    if not qop:
        return digest(f"{ha1}:{nonce}:{ha2}".encode())
    return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


class DigestClient:
    """Answers the challenges of one server for one user; counts its nonce uses."""

    def __init__(self, username: str, password: str,
                 cnonce: Callable[[], str] = lambda: os.urandom(12).hex()) -> None:
        self._username = username
        self._password = password
        self._cnonce = cnonce
        self._challenge: dict[str, str] | None = None
        self._nc = 0

    def challenged(self, header: str) -> None:
        """Remember the `WWW-Authenticate` challenge of a 401; DigestError if not digest."""
        params = parse_params(header)
        if "nonce" not in params or "realm" not in params:
            raise DigestError("the challenge has no realm or nonce")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in _HASHES:
            raise DigestError(f"algorithm {algorithm} is not supported (MD5, SHA-256)")
        self._challenge = params
        self._nc = 0

    @property
    def ready(self) -> bool:
        return self._challenge is not None

    def authorization(self, method: str, uri: str) -> str:
        """The `Authorization` header for a request, answering the last challenge."""
        if self._challenge is None:
            raise DigestError("no challenge yet")
        params = self._challenge
        qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        if qops and "auth" not in qops:
            raise DigestError(f"qop {params['qop']} is not supported (auth)")
        qop = "auth" if qops else ""
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = self._cnonce()
        algorithm = params.get("algorithm", "MD5")
        value = response(algorithm, self._username, params["realm"], self._password, method,
                         uri, params["nonce"], nc, cnonce, qop)
        fields = [("username", _quote(self._username)), ("realm", _quote(params["realm"])),
                  ("nonce", _quote(params["nonce"])), ("uri", _quote(uri)),
                  ("algorithm", algorithm), ("response", _quote(value))]
        if qop:
            fields += [("qop", qop), ("nc", nc), ("cnonce", _quote(cnonce))]
        if "opaque" in params:
            fields.append(("opaque", _quote(params["opaque"])))
        return "Digest " + ", ".join(f"{k}={v}" for k, v in fields)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a check of an Authorization header found: `ok`, or why not (`reason`)."""

    ok: bool
    reason: str = ""
    stale: bool = False


class DigestVerifier:
    """Challenges devices for one realm and checks their answers (qop=auth, MD5/SHA-256)."""

    def __init__(self, realm: str, *, key: bytes | None = None, nonce_lifetime_s: float = 300.0,
                 algorithm: str = "MD5", max_nonces: int = 4096) -> None:
        if algorithm not in _HASHES:
            raise ValueError(f"algorithm {algorithm} is not supported")
        self.realm = realm
        self._key = key or os.urandom(32)
        self._lifetime = nonce_lifetime_s
        self._algorithm = algorithm
        # nonce -> (issued, highest nc accepted), oldest first; bounded: a nonce forgotten
        # for room is refused (stale) from then on, as is any issued before it
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max_nonces = max_nonces
        self._forgotten_before = float("-inf")

    def challenge(self, now_s: float, *, stale: bool = False) -> str:
        """A `WWW-Authenticate` header with a fresh nonce."""
        # random bytes too: two challenges at one instant must not share a nonce (and its
        # counts)
        issued = struct.pack(">d", now_s) + os.urandom(8)
        mac = hmac.new(self._key, issued, hashlib.sha256).digest()[:16]
        nonce = base64.urlsafe_b64encode(issued + mac).decode().rstrip("=")
        stale_part = ", stale=true" if stale else ""
        return (f'Digest realm={_quote(self.realm)}, qop="auth", '
                f'algorithm={self._algorithm}, nonce="{nonce}"{stale_part}')

    def check(self, header: str, method: str, username: str, password: str,
              now_s: float) -> Verdict:
        """Whether `header` answers one of our challenges for `username` with `password`."""
        try:
            params = parse_params(header)
        except DigestError as exc:
            return Verdict(False, f"not digest: {exc}")
        missing = [k for k in ("username", "realm", "nonce", "uri", "response")
                   if k not in params]
        if missing:
            return Verdict(False, f"no {', '.join(missing)}")
        if params["realm"] != self.realm:
            return Verdict(False, "another realm")
        issued = self._issued(params["nonce"])
        if issued is None:
            return Verdict(False, "a nonce the gateway did not issue")
        qop = params.get("qop", "")
        if qop not in ("", "auth"):
            return Verdict(False, f"qop {qop} is not supported")
        try:
            expected = response(params.get("algorithm", "MD5"), username, self.realm, password,
                                method, params["uri"], params["nonce"], params.get("nc", ""),
                                params.get("cnonce", ""), qop)
        except DigestError as exc:
            return Verdict(False, str(exc))
        user_ok = hmac.compare_digest(params["username"].encode(), username.encode())
        if not (hmac.compare_digest(params["response"].encode(), expected.encode()) and user_ok):
            return Verdict(False, "wrong user name or password")
        if not 0 <= now_s - issued <= self._lifetime:
            return Verdict(False, "nonce expired", stale=True)
        return self._count(params["nonce"], issued, params.get("nc", ""), now_s)

    def _count(self, nonce: str, issued: float, nc_text: str, now_s: float) -> Verdict:
        """Accept each nonce count once, in increasing order, per nonce."""
        while self._counts:  # forget the nonces that expired
            oldest, (when, _) = next(iter(self._counts.items()))
            if now_s - when <= self._lifetime:
                break
            del self._counts[oldest]
        try:
            nc = int(nc_text, 16) if nc_text else 0
        except ValueError:
            return Verdict(False, f"nonce count {nc_text[:12]!r} is not hexadecimal")
        seen = self._counts.get(nonce)
        if seen is None and issued <= self._forgotten_before:
            return Verdict(False, "nonce forgotten for room", stale=True)
        if seen is not None and nc <= seen[1]:
            return Verdict(False, "replayed: nonce count already used", stale=True)
        self._counts[nonce] = (issued, nc)
        while len(self._counts) > self._max_nonces:
            _, (when, _) = self._counts.popitem(last=False)
            self._forgotten_before = max(self._forgotten_before, when)
        return Verdict(True)

    def _issued(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        if len(raw) != 32:
            return None
        issued, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._key, issued, hashlib.sha256).digest()[:16]):
            return None
        value: float = struct.unpack(">d", issued[:8])[0]
        return value


def basic_matches(header: str, username: str, password: str) -> bool:
    """Whether `header` is `Basic` with exactly these credentials (compared in constant time)."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(given.strip(), validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(decoded, f"{username}:{password}".encode())
