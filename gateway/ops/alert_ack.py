"""`scgw alerts ack`: acknowledge an active alert over MQTT, as a duty officer's console does.

The alert's retained topic says whether there is anything to acknowledge; the gateway's
answer on the same topic confirms it. Nothing is sent for an alert that is not active.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

import aiomqtt
import msgspec

from gateway.core.config import BrokerConfig, GatewayConfig
from gateway.core.model import Alert, AlertState
from gateway.core.topics import Topics
from gateway.link.tls import client_tls
from gateway.ops.doctor.broker import check_broker
from gateway.ops.doctor.finding import Status


class Outcome(enum.Enum):
    ACKNOWLEDGED = "acknowledged"  # the gateway confirmed it
    QUEUED = "queued"  # the gateway is offline: the broker keeps the ack for it
    ALREADY = "already"  # someone acknowledged it before: nothing sent
    NOT_ACTIVE = "not_active"  # no such alert, or resolved: nothing sent
    NO_GATEWAY = "no_gateway"  # no gateway of the site ever connected: nothing sent
    UNCONFIRMED = "unconfirmed"  # sent, but the gateway did not answer in time

    @property
    def ok(self) -> bool:
        return self in (Outcome.ACKNOWLEDGED, Outcome.QUEUED, Outcome.ALREADY)


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: Outcome
    alert: Alert | None  # the alert as it stands afterwards, when the broker has one


class BrokerUnavailableError(Exception):
    """The broker refused the connection, could not be reached, or dropped it."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"the broker at {where} refused the connection or is unreachable: "
                         f"{reason}")
        self.where = where
        self.reason = reason


def broker_address(config: BrokerConfig) -> str:
    return f"{config.host}:{config.port}"


async def acknowledge(config: GatewayConfig, rule: str, device: str, by: str, *,
                      timeout_s: float, env: Mapping[str, str] | None = None) -> AckResult:
    """Acknowledge the alert of `rule` on `device` if it is firing, and wait for the gateway."""
    env = os.environ if env is None else env
    broker = config.broker
    topics = Topics(config.site)
    alert_topic = topics.alert(rule, device)
    password = env.get(broker.password_env) if broker.password_env else None
    client = aiomqtt.Client(broker.host, broker.port, username=broker.username,
                            password=password, tls_context=client_tls(broker),
                            timeout=timeout_s)
    try:
        async with client:
            # the broker sends a subscription's retained message before it handles the next
            # packet: once the gateway's status (always retained) arrives, the alert's
            # retained state, if there is one, has arrived before it
            await client.subscribe(alert_topic, qos=1)
            await client.subscribe(topics.gateway_status, qos=1)
            alert, gateway = await _retained(client, alert_topic, topics.gateway_status,
                                             timeout_s)
            if gateway is None:
                return AckResult(Outcome.NO_GATEWAY, alert)
            if alert is None or alert.state is AlertState.RESOLVED:
                return AckResult(Outcome.NOT_ACTIVE, alert)
            if alert.state is AlertState.ACKNOWLEDGED:
                return AckResult(Outcome.ALREADY, alert)
            await client.publish(topics.alert_ack(rule, device),
                                 msgspec.json.encode({"by": by}), qos=1)
            if gateway != b"online":
                return AckResult(Outcome.QUEUED, alert)
            answer = await _answer(client, alert_topic, timeout_s)
            if answer is None:
                return AckResult(Outcome.UNCONFIRMED, alert)
            return AckResult(Outcome.ACKNOWLEDGED, answer)
    except aiomqtt.MqttError as exc:
        raise BrokerUnavailableError(broker_address(broker), await _why(config, env, exc,
                                                                        timeout_s)) from exc


async def _retained(client: aiomqtt.Client, alert_topic: str, status_topic: str,
                    timeout_s: float) -> tuple[Alert | None, bytes | None]:
    alert: Alert | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                if message.topic.matches(status_topic):
                    return alert, _payload(message)
                if message.topic.matches(alert_topic) and message.retain:
                    alert = _alert(_payload(message))
    except TimeoutError:
        pass
    return alert, None


async def _answer(client: aiomqtt.Client, alert_topic: str, timeout_s: float) -> Alert | None:
    """The alert's next state other than firing, as the gateway publishes it."""
    try:
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                if message.topic.matches(alert_topic):
                    alert = _alert(_payload(message))
                    if alert is not None and alert.state is not AlertState.FIRING:
                        return alert
    except TimeoutError:
        pass
    return None


def _payload(message: aiomqtt.Message) -> bytes:
    return message.payload if isinstance(message.payload, bytes) else b""


def _alert(payload: bytes) -> Alert | None:
    try:
        return msgspec.json.decode(payload, type=Alert)
    except msgspec.MsgspecError:
        return None  # an empty retained message clears the topic; anything else is not ours


async def _why(config: GatewayConfig, env: Mapping[str, str], exc: aiomqtt.MqttError,
               timeout_s: float) -> str:
    """What the broker check of `scgw doctor` finds, or the client's own error."""
    finding = await check_broker(config.broker, config.client_id, env, timeout_s)
    if finding.status is Status.OK:
        return f"the connection was lost: {exc}"
    return f"{finding.found}; fix: {finding.fix}" if finding.fix else finding.found
