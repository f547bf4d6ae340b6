"""Does the time-series store accept a point from the gateway?"""

from __future__ import annotations

import time
from collections.abc import Mapping

from gateway.core.config import StoreConfig
from gateway.ops.doctor.finding import Finding, fail, ok, skip
from gateway.sinks.store_writer import StoreWriteError, writer_for

CHECK = "store"
MEASUREMENT = "sc_doctor"  # one harmless point per run, apart from the gateway's own


async def check_store(config: StoreConfig, site: str, env: Mapping[str, str]) -> Finding:
    target = f"database {config.database}" if config.api == "v1" else f"bucket {config.bucket}"
    subject = f"{config.url} ({config.api}, {target})"
    secret = config.password_env if config.api == "v1" else config.token_env
    if secret and secret not in env:
        key = "store.password_env" if config.api == "v1" else "store.token_env"
        return skip(CHECK, subject, f"{key}: {secret} is not set")
    writer = writer_for(config, env)
    try:
        await writer.write([f"{MEASUREMENT},site={site} probe=1i {time.time_ns() // 10**6}"])
    except StoreWriteError as exc:
        return fail(CHECK, subject, str(exc), _fix(config, exc))
    finally:
        await writer.close()
    return ok(CHECK, subject, f"wrote a {MEASUREMENT} point")


def _fix(config: StoreConfig, exc: StoreWriteError) -> str:
    if exc.status is None:
        return ("start the store (sudo systemctl start influxdb, or victoria-metrics) and "
                f"check store.url ({config.url})")
    if exc.status in (401, 403):
        if config.api == "v1":
            if not config.username:
                return "the store wants a login: set store.username and store.password_env"
            return (f"check store.username ({config.username}) and the password in "
                    f"{config.password_env}; the user needs WRITE on {config.database}")
        if not config.token_env:
            return "the store wants a token: set store.token_env to a variable holding it"
        return (f"the token in {config.token_env} must allow writing to bucket "
                f"{config.bucket} in org {config.org}")
    if exc.status == 404:
        if config.api == "v1":
            return f"influx -execute 'CREATE DATABASE \"{config.database}\"'"
        if "bucket" in str(exc):
            return f"influx bucket create --name {config.bucket} --org {config.org}"
        return ('no InfluxDB v2 write API at store.url: for Debian\'s influxdb (1.x) set '
                'store.api = "v1"')
    return "see the store's log for why it refused the point"
