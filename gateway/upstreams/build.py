"""The upstream sinks of a gateway configuration."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.clock import Clock
from gateway.core.config import GatewayConfig
from gateway.core.counters import Counters
from gateway.core.upstream_config import AnyUpstream
from gateway.journal import Journal
from gateway.upstreams.policy import load_policy
from gateway.upstreams.registry import transport_for
from gateway.upstreams.shaping import Places, Shaper
from gateway.upstreams.sink import UpstreamSink
from gateway.upstreams.transport import Setting


def shaper_for(config: GatewayConfig, upstream: AnyUpstream, env: Mapping[str, str]) -> Shaper:
    """The upstream's policy (PolicyError when it cannot be used) with its pseudonym key."""
    policy = load_policy(upstream.policy)
    key = env[upstream.pseudonym_key_env].encode() if upstream.pseudonym_key_env else None
    tags = {d.id: frozenset(d.tags) for d in config.devices}
    return Shaper(upstream.name, policy, config.site, key, places_of(config),
                  lambda device: tags.get(device, frozenset()))


def places_of(config: GatewayConfig) -> Places:
    return {d.id: d.location for d in config.devices}.get


def build_upstreams(config: GatewayConfig, journal: Journal, clock: Clock, counters: Counters,
                    env: Mapping[str, str]) -> list[UpstreamSink]:
    sinks = []
    for upstream in config.upstreams:
        transport = transport_for(upstream, Setting(config.site, env, clock))
        sinks.append(UpstreamSink(upstream, shaper_for(config, upstream, env), transport,
                                  journal, clock, counters))
    return sinks
