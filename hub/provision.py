"""`scgw hub init`: the city's stream, the hubs' durable consumer and the alert bucket.

Run once per cluster (and again after changing them in hub.toml): what exists is updated
where JetStream allows it, and left alone where it is the same.
"""

from __future__ import annotations

from collections.abc import Mapping

import nats.errors
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError

from gateway.city_connection import connect
from hub.config import HubConfig

GB = 1024**3


class ProvisionError(Exception):
    """The cluster refused a definition, or could not be reached; says which and why."""


def stream_config(config: HubConfig) -> api.StreamConfig:
    stream = config.stream
    return api.StreamConfig(
        name=stream.name, subjects=list(stream.subjects), num_replicas=stream.replicas,
        duplicate_window=stream.duplicate_window_s, max_age=stream.max_age_days * 86_400,
        max_bytes=round(stream.max_gb * GB), storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD)


def consumer_config(config: HubConfig) -> api.ConsumerConfig:
    consumer = config.consumer
    return api.ConsumerConfig(
        durable_name=consumer.durable, ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL, ack_wait=consumer.ack_wait_s,
        max_ack_pending=consumer.max_ack_pending, max_deliver=-1,
        max_waiting=512)  # pull requests waiting at once: one per hub process and turn


async def provision(config: HubConfig, env: Mapping[str, str]) -> list[str]:
    """Create or update everything; what was done, one line each."""
    nc = await connect(config.nats, env, "scgw-hub-init")
    done: list[str] = []
    try:
        jsm = nc.jetstream()
        wanted = stream_config(config)
        try:
            await jsm.stream_info(wanted.name or "")
        except NotFoundError:
            await jsm.add_stream(wanted)
            done.append(f"stream {wanted.name} created ({config.stream.replicas} replicas, "
                        f"subjects {', '.join(config.stream.subjects)})")
        else:
            await jsm.update_stream(wanted)
            done.append(f"stream {wanted.name} updated")
        consumer = consumer_config(config)
        try:
            await jsm.add_consumer(config.stream.name, consumer)
        except BadRequestError as exc:
            raise ProvisionError(f"consumer {config.consumer.durable}: {exc.description}; "
                                 "delete it to change what JetStream cannot update") from exc
        done.append(f"durable consumer {config.consumer.durable} on {config.stream.name}")
        alerts = config.alerts
        await jsm.create_key_value(api.KeyValueConfig(
            bucket=alerts.bucket, history=1, replicas=alerts.replicas,
            storage=api.StorageType.FILE))
        done.append(f"alert bucket {alerts.bucket} ({alerts.replicas} replicas)")
    except nats.errors.Error as exc:
        raise ProvisionError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        await nc.close()
    return done
