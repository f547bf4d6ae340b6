"""The `[[upstreams]]` of the configuration: outside platforms the compound shares with.

Each upstream is one kind of transport (`kind`), a sharing policy file and the names of the
environment variables that hold its secrets; a secret itself is never in the file. A new
kind is a config class here (added to `AnyUpstream`), a transport module and one line of
`gateway.upstreams.registry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.core.city import NatsAccess

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamBase(_Strict):
    """What every kind of upstream has."""

    name: str = Field(pattern=_NAME)
    policy: Path  # a sharing policy file (sharing/*.yaml)
    # the HMAC key of this upstream's pseudonyms: each upstream its own, so that two
    # platforms cannot link the same card or device to each other
    pseudonym_key_env: str | None = Field(default=None, pattern=_ENV)
    batch: int = Field(default=100, ge=1, le=10_000)  # records per delivery
    retry_min_s: float = Field(default=1.0, gt=0, le=600)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=600)  # one delivery, confirmation included

    @model_validator(mode="after")
    def _retry_order(self) -> UpstreamBase:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self

    def secret_envs(self) -> dict[str, str]:
        """key -> the environment variable it names, for every secret of this upstream."""
        return {"pseudonym_key_env": self.pseudonym_key_env} if self.pseudonym_key_env else {}


class MqttUpstream(UpstreamBase):
    """A remote MQTT broker: QoS 1, a record is delivered when the broker's PUBACK came."""

    kind: Literal["mqtt"]
    host: str = Field(min_length=1)
    port: int = Field(default=8883, ge=1, le=65535)
    tls: bool = True  # verified against ca_file, else the system's certificate authorities
    ca_file: Path | None = None
    client_id: str = Field(default="", max_length=64)  # "": scgw-{site}-{name}
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV)
    # fields: site, kind, device, type, rule (as the record leaves, after the policy)
    topic: str = Field(default="sc/{site}/shared/{kind}/{device}/{type}", min_length=1)
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @model_validator(mode="after")
    def _credentials(self) -> MqttUpstream:
        if bool(self.username) != bool(self.password_env):
            raise ValueError("username and password_env go together")
        if "+" in self.topic or "#" in self.topic:
            raise ValueError("topic: a template of one topic, no wildcards")
        return self

    def secret_envs(self) -> dict[str, str]:
        out = super().secret_envs()
        if self.password_env:
            out["password_env"] = self.password_env
        return out


class WebhookUpstream(UpstreamBase):
    """An HTTPS endpoint taking JSON batches, each signed with HMAC-SHA256."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https://[^\s]+$")
    secret_env: str = Field(pattern=_ENV)  # the HMAC-SHA256 key the platform shares
    ca_file: Path | None = None  # None: the system's certificate authorities

    def secret_envs(self) -> dict[str, str]:
        return {**super().secret_envs(), "secret_env": self.secret_env}


class JetStreamUpstream(UpstreamBase):
    """The city's NATS JetStream cluster: each parcel published to
    `sc.{district}.{site}.{kind}.{device}.{type}` with a message id the stream deduplicates
    by; delivered when the stream acknowledged it (stored on a majority of its replicas)."""

    kind: Literal["jetstream"]
    district: str = Field(pattern=_NAME)
    nats: NatsAccess
    # the stream the subjects must land in: a publish that no stream, or another one, takes
    # is not confirmed
    stream: str | None = Field(default="SC", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # the CA the cluster's certificates are checked against (TLS, `tls://` servers); None:
    # nats.tls.ca_file, else the system's certificate authorities
    ca_file: Path | None = None
    # whether the city board may acknowledge this compound's alerts (where the hub's
    # `board.ack_granted` names the compound too); refused and counted when false
    city_acks: bool = False

    def secret_envs(self) -> dict[str, str]:
        return {**super().secret_envs(),
                **{f"nats.{key}": name for key, name in self.nats.secrets().items()}}


AnyUpstream = MqttUpstream | WebhookUpstream | JetStreamUpstream
UpstreamConfig = Annotated[AnyUpstream, Field(discriminator="kind")]


class SharingConfig(_Strict):
    """What every upstream shares: how long the audit of what left is kept."""

    audit_keep_days: float = Field(default=400.0, gt=0, le=3650)
