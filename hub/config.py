"""The hub's TOML file (`hub.toml`), validated with pydantic; errors name the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.city import NatsAccess
from gateway.core.config import StoreConfig
from gateway.core.problems import ConfigError, Problem, problem_from_pydantic, read_toml

_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # stream, consumer and bucket names
_COMPOUND = r"^[^/\s]{1,64}/[^/\s]{1,64}$"  # district/site, or district/*


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamConfig(_Strict):
    """The city's stream, as `scgw hub init` creates it."""

    name: str = Field(default="SC", pattern=_NAME)
    subjects: list[str] = Field(default_factory=lambda: ["sc.>"], min_length=1)
    replicas: int = Field(default=3, ge=1, le=5)
    # a compound that publishes the same record again within this long (its confirmation
    # was lost) is recognised by the record's id: the stream keeps one copy
    duplicate_window_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    max_age_days: float = Field(default=7.0, gt=0, le=3650)
    max_gb: float = Field(default=50.0, gt=0)


class ConsumerConfig(_Strict):
    """The hubs' durable pull consumer: every hub process with this name shares the work."""

    durable: str = Field(default="hub", pattern=_NAME)
    # a record a hub took and did not acknowledge within this long goes to another hub
    ack_wait_s: float = Field(default=30.0, ge=1, le=3600)
    max_ack_pending: int = Field(default=20_000, ge=1, le=1_000_000)
    batch: int = Field(default=500, ge=1, le=10_000)  # records fetched per turn
    fetch_wait_s: float = Field(default=1.0, gt=0, le=60)


class AlertsConfig(_Strict):
    """The city-wide alert state: a replicated key-value bucket every hub reads and writes."""

    bucket: str = Field(default="sc_alerts", pattern=_NAME)
    replicas: int = Field(default=3, ge=1, le=5)
    resolved_kept_h: float = Field(default=24.0, ge=0, le=24 * 365)


class BoardConfig(_Strict):
    """The read-only city board (HTML and JSON), one per hub process."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    refresh_s: int = Field(default=5, ge=1, le=3600)  # unused: the board is pushed
    # when neither `?lang=` nor the browser says
    language: Literal["zh-CN", "en"] = "zh-CN"
    # the latest events (of every compound) each hub process keeps for the board
    events_kept: int = Field(default=1000, ge=0, le=100_000)
    # compounds whose alerts the board may acknowledge, as `district/site` or `district/*`
    # (the compound's gateway must let the city too: its upstream's `city_acks`)
    ack_granted: list[Annotated[str, Field(pattern=_COMPOUND)]] = Field(default_factory=list)
    # who acknowledges: the header the city's authenticating proxy puts the user's name in,
    # believed only from these addresses (the proxy's)
    user_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    proxy_addresses: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)

    def grants(self, district: str, site: str) -> bool:
        """Whether the board may acknowledge alerts of `site` in `district`."""
        return f"{district}/{site}" in self.ack_granted or f"{district}/*" in self.ack_granted


class HubConfig(_Strict):
    nats: NatsAccess
    stream: StreamConfig = StreamConfig()
    consumer: ConsumerConfig = ConsumerConfig()
    alerts: AlertsConfig = AlertsConfig()
    store: StoreConfig
    board: BoardConfig = BoardConfig()


def parse_hub_config(raw: dict[str, object], file: Path, env: Mapping[str, str]
                     ) -> HubConfig:
    """Validate `raw`; ConfigError naming every problem, missing secrets included."""
    try:
        config = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(file, [problem_from_pydantic(e, dict(raw)) for e in exc.errors()]
                          ) from exc
    needed = {f"nats.{key}": name for key, name in config.nats.secrets().items()}
    if config.store.token_env:
        needed["store.token_env"] = config.store.token_env
    if config.store.password_env:
        needed["store.password_env"] = config.store.password_env
    problems = [Problem(key, f"the environment variable {name} is not set")
                for key, name in needed.items() if not env.get(name)]
    if config.board.ack_granted and config.board.user_header is None:
        problems.append(Problem("board.ack_granted", "needs board.user_header: an "
                                "acknowledgement names who made it (the city's "
                                "authenticating proxy says who)"))
    if problems:
        raise ConfigError(file, problems)
    return config


def load_hub_config(file: Path, env: Mapping[str, str]) -> HubConfig:
    return parse_hub_config(read_toml(file), file, env)
