"""The city board's acknowledgement of an alert, sent to its compound's gateway: a NATS
request on `scack.{district}.{site}`, answered by the gateway (gateway/upstreams/city_acks.py)
once it journalled it, or refused it. The acknowledged transition then comes back through
the stream like every other."""

from __future__ import annotations

import asyncio

import msgspec
import nats.errors
from nats.aio.client import Client

from gateway.city_connection import cancelling
from gateway.core.city import CityAck, CityAckAnswer, ack_subject
from hub.alerts import CityAlert

_decoder = msgspec.json.Decoder(CityAckAnswer)


async def send_ack(nc: Client, alert: CityAlert, user: str, timeout_s: float
                   ) -> CityAckAnswer:
    """The compound's answer; `not_connected` or `timeout` when there is none."""
    request = msgspec.json.encode(CityAck(alert=alert.id, user=user))
    try:
        reply = await nc.request(ack_subject(alert.district, alert.site), request,
                                 timeout=timeout_s)
    except nats.errors.NoRespondersError:
        return CityAckAnswer(ok=False, reason="not_connected",
                             error=f"the gateway of {alert.district}/{alert.site} is not "
                                   "connected to the city")
    except TimeoutError:  # nats' own is one too
        if cancelling():
            raise asyncio.CancelledError from None
        return CityAckAnswer(ok=False, reason="timeout",
                             error=f"the gateway of {alert.district}/{alert.site} did not "
                                   f"answer within {timeout_s} s")
    except (nats.errors.Error, OSError) as exc:
        return CityAckAnswer(ok=False, reason="unreachable",
                             error=f"the city's cluster: {type(exc).__name__}: {exc}")
    try:
        return _decoder.decode(reply.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return CityAckAnswer(ok=False, reason="bad_answer", error=f"the gateway's answer: {exc}")
