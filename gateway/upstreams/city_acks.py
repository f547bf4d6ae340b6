"""Acknowledgements from the city board, for a compound whose `jetstream` upstream lets the
city acknowledge (`city_acks = true`) and whose district the hub grants it.

The hub sends a request on `scack.{district}.{site}` (gateway.core.city.CityAck); the
gateway journals the acknowledgement as any other, by `city:{user}`, through the same desk
as the console's and MQTT's (gateway/acks.py): an alert that is not firing, or unknown, is
refused there. Every request is answered: journalled, or refused with its reason; refusals
are counted in `ack_rejected{rule, reason}` (`city_not_granted` while `city_acks` is off).
The listener keeps a connection of its own to the cluster, so that an upstream with
nothing to deliver still hears the city.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.acks import AckRefusedError
from gateway.city_connection import CityAccessError, cancelling, connect
from gateway.core.backoff import Backoff
from gateway.core.city import CityAck, CityAckAnswer, ack_subject
from gateway.core.counters import UNKNOWN, Counters
from gateway.core.model import Alert
from gateway.core.upstream_config import JetStreamUpstream
from gateway.upstreams.jetstream import with_ca
from gateway.upstreams.transport import Setting

log = logging.getLogger(__name__)

CITY_BY = "city:"  # what an acknowledgement from the city board is journalled by
_decoder = msgspec.json.Decoder(CityAck)
_encoder = msgspec.json.Encoder()


class Acknowledger(Protocol):
    """The gateway's ack desk (`gateway.acks.AckDesk`)."""

    async def acknowledge(self, rule: str, device: str, by: str) -> None: ...


class CityAckListener:
    """`run` until cancelled: answers the city board's acknowledgements."""

    def __init__(self, config: JetStreamUpstream, setting: Setting, desk: Acknowledger,
                 active: Callable[[], list[Alert]], counters: Counters) -> None:
        self._config = config
        self._site = setting.site
        self._env = setting.env
        self._clock = setting.clock
        self._access = with_ca(config.nats, config)
        self._desk = desk
        self._active = active
        self._counters = counters
        self.subject = ack_subject(config.district, setting.site)
        self.listening = asyncio.Event()

    async def run(self) -> None:
        access = self._access
        if self._config.city_acks and not access.secrets() and (
                access.tls is None or access.tls.cert_file is None):
            log.warning("upstream %s lets the city acknowledge alerts (city_acks) over a "
                        "connection without credentials: only a cluster that authenticates "
                        "its clients and lets the hub alone publish on %s keeps others from "
                        "acknowledging them", self._config.name, self.subject)
        client = await self._connect()
        try:
            await client.subscribe(self.subject, cb=self._on_request)
            self.listening.set()
            await asyncio.Event().wait()
        finally:
            self.listening.clear()
            with contextlib.suppress(nats.errors.Error, OSError):
                await client.close()

    async def _connect(self) -> Client:
        """A connection, once a server of the list answers (the client keeps it after)."""
        backoff = Backoff(self._config.retry_min_s, self._config.retry_max_s)
        name = f"scgw-{self._site}-{self._config.name}-acks"
        while True:
            try:
                async with asyncio.timeout(self._config.timeout_s):
                    return await connect(self._access, self._env, name)
            except CityAccessError:
                raise  # a missing secret: the configuration's check names it first
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                delay = backoff.next_delay()
                self._counters.log_every(log, ("city_acks", self._config.name),
                                         self._clock.monotonic(), 60.0,
                                         "upstream %s: the city's acknowledgements cannot be "
                                         "heard yet (%s); again in %.1f s", self._config.name,
                                         exc, delay)
                await self._clock.sleep(delay)

    async def _on_request(self, msg: Msg) -> None:
        answer = await self.handle(msg.data)
        if msg.reply:
            with contextlib.suppress(nats.errors.Error, OSError):
                await msg.respond(_encoder.encode(answer))

    async def handle(self, data: bytes) -> CityAckAnswer:
        """Journal the acknowledgement in `data`, or say why not."""
        try:
            request = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._refused(UNKNOWN, "malformed", f"not a city acknowledgement: {exc}")
        alert = next((a for a in self._active() if a.id == request.alert), None)
        label = alert.rule if alert is not None else UNKNOWN
        if not self._config.city_acks:
            return self._refused(label, "city_not_granted", f"site {self._site} does not let "
                                 "the city acknowledge its alerts (upstream "
                                 f"{self._config.name}: city_acks)")
        if alert is None:
            return self._refused(label, "not_firing", f"no active alert {request.alert[:64]}")
        try:
            await self._desk.acknowledge(alert.rule, alert.device, f"{CITY_BY}{request.user}")
        except AckRefusedError as exc:  # counted by the desk
            return CityAckAnswer(ok=False, reason=exc.reason, error=str(exc))
        log.info("the city's %s acknowledged %s on %s", request.user, alert.rule, alert.device)
        return CityAckAnswer(ok=True)

    def _refused(self, label: str, reason: str, detail: str) -> CityAckAnswer:
        self._counters.inc("ack_rejected", rule=label, reason=reason)
        self._counters.log_once(log, ("ack", "city", label, reason),
                                "an acknowledgement from the city refused (%s): %s; repeats "
                                "are counted", reason, detail)
        return CityAckAnswer(ok=False, reason=reason, error=detail)
