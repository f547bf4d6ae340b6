"""The gateway's heap: the C allocator's side of its resident memory (glibc; elsewhere a
no-op), and the start-up's objects kept out of the garbage collector's way.

Two settings, both for a Pi's small memory: one malloc arena for the whole process
(glibc gives each thread that allocates an arena of its own, whose touched pages stay
resident: the journal's thread and the resolver's), set before any thread starts; and,
once the gateway is connected and then every 10 minutes, the free pages left by the
start-up (the configuration's TOML, its validation, the rule files) or a burst handed back
to the kernel. Measured with 1,000 configured devices: about 2 MiB of the idle gateway's 52.

And once started, what the start-up left (the configuration, the devices' channels, the
rules: some 70,000 objects with 1,000 devices) is frozen out of the cyclic garbage
collector: a full collection walked them all, 20-60 ms on this machine's cores and more on
a Pi's, in whatever turn of the loop it fell (an alarm's among them), every time enough
readings had outlived their young generations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc's, not every libc has them
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def one_arena() -> bool:
    """One malloc arena for every thread; call before the first thread starts. Whether the
    allocator took it."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, 1))


def give_back() -> bool:
    """Return the allocator's free pages to the kernel; whether any were returned."""
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))


def settle_heap() -> int:
    """Collect the start-up's garbage, then freeze what is left out of later full
    collections (they no longer walk it); the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
