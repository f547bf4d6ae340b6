"""Is the system clock set and kept synchronised? The kernel's view, through adjtimex(2).

A Raspberry Pi has no battery-backed clock: until NTP has synchronised after boot, the time
is whatever the image or fake-hwclock left, possibly days or years off. Every reading,
event and alert carries that time. The gateway watches this state and reports it
(`scgw status`, `/metrics`); `scgw doctor` checks it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# a year before this release: a clock earlier than this has never been set
EARLIEST = datetime(2025, 11, 1, tzinfo=UTC)

_TIME_ERROR = 5  # adjtimex's answer while the kernel considers the clock unsynchronised
_STA_UNSYNC = 0x0040


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the kernel says about the system clock."""

    now: datetime
    synchronised: bool
    max_error_s: float  # the kernel's bound on the clock's error


ClockProbe = Callable[[], ClockState]


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """struct timex (linux/timex.h) up to `time`; the kernel writes more: padded."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),  # microseconds
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("rest", ctypes.c_byte * 256),
    )


def read_kernel_clock() -> ClockState:
    """adjtimex(2) with no changes requested: needs no privileges. Linux only."""
    # the plain `adjtimex` symbol keeps the ABI where time fields are C longs, also on 32-bit
    # systems built for 64-bit time, so this struct matches on every Pi OS
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already uses
    if not hasattr(libc, "adjtimex"):
        raise OSError("adjtimex(2) is Linux-only: the clock's sync state is unknown")
    timex = _Timex()
    state = libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex failed: errno {errno}")
    now = datetime.fromtimestamp(timex.time.tv_sec + timex.time.tv_usec / 1e6, UTC)
    unsynchronised = state == _TIME_ERROR or bool(timex.status & _STA_UNSYNC)
    return ClockState(now=now, synchronised=not unsynchronised,
                      max_error_s=timex.maxerror / 1e6)


def trustworthy(state: ClockState) -> bool:
    """Synchronised, and not obviously a clock that was never set."""
    return state.synchronised and state.now >= EARLIEST
