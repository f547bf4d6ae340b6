"""A pull consumer's fetch, bounded by the caller.

nats-py's `PullSubscription.fetch` can outlive its own timeout: a pull request orphaned by
a reconnect (or left lingering by an earlier fetch) takes the messages meant for the next
one, which then waits for a 408 that never comes (nats-io/nats.py#933, #986). A fetch that
has not returned `STALL_S` after its own timeout is given up here, and the caller
subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

STALL_S = 2.0  # beyond the fetch's own timeout


class FetchStalledError(Exception):
    """A fetch did not return within its timeout and STALL_S."""


async def fetch_bounded(sub: JetStreamContext.PullSubscription, batch: int, wait_s: float
                        ) -> list[Msg]:
    """`sub.fetch(batch, timeout=wait_s)`, or FetchStalledError once it outlived that by
    STALL_S (its own errors, TimeoutError among them, as it raises them)."""
    fetching = asyncio.ensure_future(sub.fetch(batch, timeout=wait_s))
    try:
        done, _ = await asyncio.wait({fetching}, timeout=wait_s + STALL_S)
    finally:
        if not fetching.done():
            fetching.cancel()
            with contextlib.suppress(BaseException):
                await fetching
    if not done:
        raise FetchStalledError(f"a fetch of {batch} did not return in {wait_s + STALL_S:g} s")
    return fetching.result()


async def drop(sub: JetStreamContext.PullSubscription | None) -> None:
    """Stop `sub` listening; a server that does not answer forgets it by itself."""
    if sub is not None:
        with contextlib.suppress(nats.errors.Error, OSError):
            await sub.unsubscribe()
