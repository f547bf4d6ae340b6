"""The city: how a compound's gateway and the city hub reach the NATS cluster, and the
subjects a compound's records travel on (`sc.{district}.{site}.{kind}.{device}.{type}`).

Plain data: nothing here loads the NATS client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from pydantic import BaseModel, ConfigDict, Field

SUBJECT_ROOT = "sc"
# a subject token may hold these as they are; anything else is written %XX (UTF-8 bytes),
# so a device id with a dot or a space keeps its own token and reads back the same
_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPED = re.compile(r"%([0-9A-F]{2})")


class NatsTls(BaseModel):
    """The CA the servers' certificates are checked against (None: the system's), and our
    own certificate where the cluster asks for one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class NatsAccess(BaseModel):
    """Where the cluster is and who we are to it; secrets are named, never written here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: list[str] = Field(min_length=1, max_length=32)
    user: str | None = None  # with the password in password_env
    password_env: str | None = None
    token_env: str | None = None
    # an nkey seed (`SU...`) in this variable, or the path of a JWT credentials file
    nkey_seed_env: str | None = None
    credentials_env: str | None = None
    tls: NatsTls | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_wait_s: float = Field(default=1.0, gt=0, le=120)

    def secrets(self) -> dict[str, str]:
        """The variables this access needs, by key: `{"password_env": "NATS_PASSWORD"}`."""
        keys = ("password_env", "token_env", "nkey_seed_env", "credentials_env")
        return {key: name for key in keys if (name := getattr(self, key)) is not None}


def token(text: str) -> str:
    """`text` as one subject token: letters, digits, `_` and `-` as they are, the rest %XX."""
    if text and all(_PLAIN.fullmatch(c) for c in text):
        return text
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode())
                   for c in text) or "%00"


def untoken(text: str) -> str:
    """The text of a token made by `token`."""
    if "%" not in text:
        return text
    if text == "%00":
        return ""
    raw = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("latin-1").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class CitySubject:
    """Where a compound's record travels: which compound, which device, what it is."""

    district: str
    site: str
    kind: str
    device: str
    type: str

    def __str__(self) -> str:
        return ".".join((SUBJECT_ROOT, *(token(part) for part in (
            self.district, self.site, self.kind, self.device, self.type))))

    @classmethod
    def parse(cls, subject: str) -> CitySubject | None:
        """The parts of a subject this scheme made, or None when it is not one."""
        parts = subject.split(".")
        if len(parts) != 6 or parts[0] != SUBJECT_ROOT or not all(parts):
            return None
        district, site, kind, device, type_ = (untoken(p) for p in parts[1:])
        return cls(district, site, kind, device, type_)


# Acknowledgements from the city board travel back on `scack.{district}.{site}` (a NATS
# request; the compound's gateway answers): not under `sc.`, which the city's stream keeps.
ACK_ROOT = "scack"
MAX_CITY_USER = 100  # characters of the board's user name: `city:` is put before it


def ack_subject(district: str, site: str) -> str:
    return ".".join((ACK_ROOT, token(district), token(site)))


class CityAck(msgspec.Struct, frozen=True, kw_only=True):
    """The city board acknowledges `alert` (the compound's own alert id) as `user`."""

    alert: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CITY_USER)]


class CityAckAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The compound's answer: journalled (`ok`), or refused with a reason (its counter's
    label) and why."""

    ok: bool
    reason: str = ""
    error: str = ""
