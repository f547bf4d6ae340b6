"""An upstream that is the city's NATS JetStream cluster.

Each parcel is published to `sc.{district}.{site}.{kind}.{device}.{type}` with
`Nats-Msg-Id` = district, site, record id and type: the stream stores a message id once
within its duplicate window, so a delivery retried after a lost acknowledgement is not
stored twice. A parcel counts as delivered when the stream acknowledged it, which JetStream
does once a majority of the stream's replicas hold it.

A device's parcels go one after another, each after the acknowledgement of the one before;
different devices' parcels go side by side. When a stream leader is lost mid-delivery, no
later parcel of a device can be stored before an earlier one: the stream keeps each device's
order, as the journal has it. A delivery that failed part way (a timeout over a slow line)
is sent again without the parcels already acknowledged: each try gets further.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import nats.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from gateway.city_connection import CityAccessError, cancelling, connect
from gateway.core.city import CitySubject, NatsAccess, NatsTls
from gateway.core.upstream_config import JetStreamUpstream
from gateway.upstreams.transport import Parcel, Setting, TransportDown

MSG_ID = "Nats-Msg-Id"
CONFIRMED_KEPT = 20_000  # message ids remembered as acknowledged: a few batches' worth


class JetStreamTransport:
    def __init__(self, config: JetStreamUpstream, setting: Setting) -> None:
        self._config = config
        self._site = setting.site
        self._env = setting.env
        self._access = with_ca(config.nats, config)
        self._nats: Client | None = None
        self._js: JetStreamContext | None = None
        # message ids the stream acknowledged lately, oldest first: a batch delivered again
        # after a timeout part way sends only the rest, so a slow line makes progress
        self._confirmed: dict[str, None] = {}

    def subject(self, parcel: Parcel) -> str:
        return str(CitySubject(self._config.district, self._site, parcel.kind, parcel.device,
                               parcel.type))

    def message_id(self, parcel: Parcel) -> str:
        """Unique in the city: an alert's transitions share the alert's id, not its state."""
        return f"{self._config.district}.{self._site}.{parcel.record_id}.{parcel.type}"

    async def open(self) -> None:
        name = f"scgw-{self._site}-{self._config.name}"
        try:
            # the client tries the servers again and again: bounded here, retried by the sink
            async with asyncio.timeout(self._config.timeout_s):
                self._nats = await connect(self._access, self._env, name)
        except CityAccessError as exc:
            raise TransportDown("access", str(exc)) from exc
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            if cancelling():
                raise asyncio.CancelledError from None
            raise TransportDown("unreachable", f"{type(exc).__name__}: {exc}") from exc
        self._js = self._nats.jetstream(timeout=self._config.timeout_s)

    async def deliver(self, parcels: Sequence[Parcel]) -> None:
        js = self._js
        if js is None:
            raise TransportDown("not_connected")
        chains: dict[str, list[Parcel]] = {}
        for parcel in parcels:
            chains.setdefault(parcel.device, []).append(parcel)
        results = await asyncio.gather(*(self._chain(js, chain) for chain in chains.values()),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # TransportDown of the first chain that stopped, or a bug

    async def _chain(self, js: JetStreamContext, parcels: list[Parcel]) -> None:
        """One device's parcels in order; stops at the first that is not acknowledged."""
        for parcel in parcels:
            message_id = self.message_id(parcel)
            if message_id in self._confirmed:
                continue
            try:
                ack = await js.publish(self.subject(parcel), parcel.payload,
                                       timeout=self._config.timeout_s,
                                       stream=self._config.stream,
                                       headers={MSG_ID: message_id})
            except (TimeoutError, nats.errors.Error) as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                raise TransportDown("not_confirmed", f"{type(exc).__name__}: {exc}") from exc
            if self._config.stream is not None and ack.stream != self._config.stream:
                raise TransportDown("wrong_stream", f"stored in {ack.stream}, not in "
                                                    f"{self._config.stream}")
            self._confirmed[message_id] = None
            if len(self._confirmed) > CONFIRMED_KEPT:
                del self._confirmed[next(iter(self._confirmed))]

    async def close(self) -> None:
        client, self._nats, self._js = self._nats, None, None
        if client is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await client.close()


def with_ca(access: NatsAccess, config: JetStreamUpstream) -> NatsAccess:
    """`access`, its CA the upstream's `ca_file` where it names one."""
    if config.ca_file is None:
        return access
    tls = access.tls or NatsTls()
    return access.model_copy(update={"tls": tls.model_copy(update={"ca_file": config.ca_file})})
