"""An upstream that is a remote MQTT broker: each parcel published with QoS 1, delivered
when the broker's PUBACK came. TLS verifies the broker's certificate and host name."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence

import aiomqtt

from gateway.core.upstream_config import MqttUpstream
from gateway.upstreams.transport import Parcel, Setting, TransportDown

TOPIC_FIELDS = ("site", "kind", "device", "type", "rule")


class MqttTransport:
    def __init__(self, config: MqttUpstream, setting: Setting) -> None:
        self._config = config
        self._site = setting.site
        self._password = setting.env[config.password_env] if config.password_env else None
        self._mqtt: aiomqtt.Client | None = None
        self._tls: ssl.SSLContext | None = None
        if config.tls:
            self._tls = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None)

    def topic(self, parcel: Parcel) -> str:
        # each value one topic level: a '/' or a wildcard in it would change the topic
        values = {"site": self._site, "kind": parcel.kind, "device": parcel.device,
                  "type": parcel.type, "rule": parcel.rule}
        return self._config.topic.format_map(
            {k: v.replace("/", "_").replace("+", "_").replace("#", "_")
             for k, v in values.items()})

    async def open(self) -> None:
        config = self._config
        client = aiomqtt.Client(
            config.host, config.port, username=config.username, password=self._password,
            identifier=config.client_id or f"scgw-{self._site}-{config.name}",
            tls_context=self._tls, keepalive=config.keepalive_s, timeout=config.timeout_s)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise TransportDown("unreachable", str(exc)) from exc
        self._mqtt = client

    async def deliver(self, parcels: Sequence[Parcel]) -> None:
        client = self._mqtt
        if client is None:
            raise TransportDown("not_connected")
        # issued in order (each device's order on the wire), confirmed together
        results = await asyncio.gather(
            *(client.publish(self.topic(p), p.payload, qos=1) for p in parcels),
            return_exceptions=True)
        for result in results:
            if isinstance(result, aiomqtt.MqttError):
                raise TransportDown("not_confirmed", str(result)) from result
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        client, self._mqtt = self._mqtt, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)
