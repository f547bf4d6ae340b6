"""Waiting for the first of several things to happen."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def first_of(*waits: asyncio.Event | asyncio.Future[Any]) -> None:
    """Return when any of the events is set or any of the futures is done."""
    tasks: list[asyncio.Future[object]] = []
    for w in waits:
        if isinstance(w, asyncio.Event):
            if w.is_set():
                return
            aw: Awaitable[object] = w.wait()
            tasks.append(asyncio.ensure_future(aw))
        else:
            if w.done():
                return
            tasks.append(asyncio.ensure_future(asyncio.shield(w)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
