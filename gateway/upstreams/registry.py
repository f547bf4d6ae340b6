"""Upstream kinds: each `kind` of `[[upstreams]]` and the factory of its transport.

A new kind is a config class (gateway.core.upstream_config), a transport module and one line
here. Each factory imports its transport's libraries only when an upstream of its kind is
configured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.core.upstream_config import (
    AnyUpstream,
    JetStreamUpstream,
    MqttUpstream,
    WebhookUpstream,
)
from gateway.upstreams.transport import Setting, Transport

Factory = Callable[[Any, Setting], Transport]


def _mqtt(config: MqttUpstream, setting: Setting) -> Transport:
    from gateway.upstreams.mqtt_transport import MqttTransport

    return MqttTransport(config, setting)


def _webhook(config: WebhookUpstream, setting: Setting) -> Transport:
    from gateway.upstreams.webhook_transport import WebhookTransport

    return WebhookTransport(config, setting)


def _jetstream(config: JetStreamUpstream, setting: Setting) -> Transport:
    from gateway.upstreams.jetstream import JetStreamTransport

    return JetStreamTransport(config, setting)


TRANSPORTS: Mapping[str, Factory] = {
    "mqtt": _mqtt,
    "webhook": _webhook,
    "jetstream": _jetstream,
}


def transport_for(config: AnyUpstream, setting: Setting) -> Transport:
    factory = TRANSPORTS.get(config.kind)
    if factory is None:
        raise ValueError(f"upstream {config.name}: no transport for kind {config.kind!r}")
    return factory(config, setting)
