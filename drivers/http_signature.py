"""Signed pushes: an HMAC of each push made with the device's token, and the nonces seen.

A device with `http.auth = "signed"` sends, instead of its token:

    X-Scgw-Timestamp: <unix seconds>
    X-Scgw-Nonce: <16 to 64 characters of A-Z a-z 0-9 _ ->
    Authorization: SCGW-HMAC-SHA256 <hex of HMAC-SHA256(token, signed_message(...))>

A push is accepted once: its timestamp must lie within the replay window of the gateway's
clock, and its nonce must not have been seen within that window. A nonce is remembered until
its push's timestamp leaves the window; from then on, the same push is refused as stale.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

SCHEME: Final = "SCGW-HMAC-SHA256"
TIMESTAMP_HEADER: Final = "X-Scgw-Timestamp"
NONCE_HEADER: Final = "X-Scgw-Nonce"
NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def signed_message(timestamp: int, nonce: str, device: str, body: bytes) -> bytes:
    """What the signature covers."""
    return f"{timestamp}\n{nonce}\n{device}\n".encode() + body


def sign(token: bytes, timestamp: int, nonce: str, device: str, body: bytes) -> str:
    """The hex signature of a push, as the device computes it."""
    return hmac.new(token, signed_message(timestamp, nonce, device, body),
                    hashlib.sha256).hexdigest()


class UnsignedError(ValueError):
    """The request does not carry a well-formed signature."""


@dataclass(frozen=True, slots=True)
class Signature:
    """The signature headers of a request, checked for form only."""

    timestamp: int
    nonce: str
    digest: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Signature:
        scheme, _, digest = headers.get("Authorization", "").partition(" ")
        if scheme != SCHEME:
            raise UnsignedError(f"no {SCHEME} signature in Authorization")
        if not _HEX.fullmatch(digest.strip()):
            raise UnsignedError("the signature is not 64 hex digits")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise UnsignedError(f"{TIMESTAMP_HEADER} is not unix seconds")
        nonce = headers.get(NONCE_HEADER, "")
        if not NONCE.fullmatch(nonce):
            raise UnsignedError(f"{NONCE_HEADER} is not 16 to 64 characters of "
                                "A-Z a-z 0-9 _ -")
        return cls(int(timestamp), nonce, digest.strip().lower())

    def matches(self, token: bytes, device: str, body: bytes) -> bool:
        expected = sign(token, self.timestamp, self.nonce, device, body)
        return hmac.compare_digest(expected.encode(), self.digest.encode())


@dataclass(slots=True)
class _Seen:
    expiries: list[tuple[float, str]] = field(default_factory=list)  # a heap
    nonces: set[str] = field(default_factory=set)

    def expire(self, now_s: float) -> None:
        while self.expiries and self.expiries[0][0] < now_s:
            _, nonce = heapq.heappop(self.expiries)
            self.nonces.discard(nonce)


class SeenNonces:
    """The nonces of accepted signed pushes, per device, for as long as a replay of their push
    could pass the timestamp check; at most `cap` per device."""

    def __init__(self, window_s: float, cap: int) -> None:
        self.window_s = window_s
        self.cap = cap
        self._seen: dict[str, _Seen] = {}

    def held(self, device: str) -> int:
        """Nonces remembered for `device`."""
        seen = self._seen.get(device)
        return len(seen.nonces) if seen is not None else 0

    def stale(self, timestamp: int, now_s: float) -> bool:
        return abs(now_s - timestamp) > self.window_s

    def expire(self, now_s: float) -> None:
        """Forget every nonce whose push has left the window, of every device."""
        for device in [d for d, seen in self._seen.items() if seen.expiries
                       and seen.expiries[0][0] < now_s]:
            seen = self._seen[device]
            seen.expire(now_s)
            if not seen.nonces:
                del self._seen[device]

    def seen(self, device: str, nonce: str) -> bool:
        seen = self._seen.get(device)
        return seen is not None and nonce in seen.nonces

    def full(self, device: str) -> float | None:
        """None while `device` may add a nonce; else when its oldest one expires."""
        seen = self._seen.get(device)
        if seen is None or len(seen.nonces) < self.cap:
            return None
        return seen.expiries[0][0]

    def add(self, device: str, nonce: str, timestamp: int) -> None:
        """Remember `nonce` until its push's timestamp leaves the window."""
        seen = self._seen.setdefault(device, _Seen())
        seen.nonces.add(nonce)
        heapq.heappush(seen.expiries, (timestamp + self.window_s, nonce))
