"""Is the system clock set and kept synchronised? The kernel's view, through adjtimex(2).

A Raspberry Pi has no battery-backed clock: until NTP has synchronised after boot, the time
is whatever the image or fake-hwclock left, possibly days or years off. Every reading,
event and alert carries that time. The gateway watches this state and reports it
(`scgw status`, `/metrics`); `scgw doctor` checks it.

"Now" is always the clock the gateway stamps with (`time.time()`, CLOCK_REALTIME). Only the
synchronisation state and the error bounds come from adjtimex: kernels in containers and
sandboxes emulate it, and the time field of its answer can be minutes off the system time
there. That time is kept (`kernel_time`) only so a disagreement can be reported.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# a year before this release: a clock earlier than this has never been set
EARLIEST = datetime(2025, 11, 1, tzinfo=UTC)

TIME_ERROR = 5  # adjtimex's answer while the kernel considers the clock unsynchronised
STA_UNSYNC = 0x0040
STATUS_BITS = 0xFFFF  # every STA_* flag of linux/timex.h lies in the low 16 bits
MAX_ERROR_US = 16_000_000  # NTP_PHASE_LIMIT: the kernel caps maxerror and esterror here


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the system clock says and what the kernel says about it."""

    now: datetime  # the system time: the clock every record is stamped with
    synchronised: bool
    max_error_s: float  # the kernel's bound on the clock's error
    est_error_s: float = 0.0  # the kernel's estimate of the clock's error
    kernel_time: datetime | None = None  # adjtimex's own time field, for comparison only

    @property
    def kernel_offset_s(self) -> float | None:
        """How far adjtimex's time field is from the system time, when it gave one."""
        if self.kernel_time is None:
            return None
        return (self.kernel_time - self.now).total_seconds()

    def kernel_disagrees(self) -> bool:
        """adjtimex's time is further from the system time than its own maximum error."""
        offset = self.kernel_offset_s
        # a second of slack: the two are read one after the other, not at one instant
        return offset is not None and abs(offset) > self.max_error_s + 1.0


ClockProbe = Callable[[], ClockState]


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class Timex(ctypes.Structure):
    """struct timex (linux/timex.h) up to `time`; the kernel writes more: padded."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),  # microseconds
        ("esterror", ctypes.c_long),  # microseconds
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("rest", ctypes.c_byte * 256),
    )


def adjtimex() -> tuple[int, Timex]:
    """adjtimex(2) with no changes requested (needs no privileges): its answer and struct."""
    # the plain `adjtimex` symbol keeps the ABI where time fields are C longs, also on 32-bit
    # systems built for 64-bit time, so this struct matches on every Pi OS
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already uses
    if not hasattr(libc, "adjtimex"):
        raise OSError("adjtimex(2) is Linux-only: the clock's sync state is unknown")
    timex = Timex()
    answer = libc.adjtimex(ctypes.byref(timex))
    if answer < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex failed: errno {errno}")
    return int(answer), timex


def read_kernel_clock() -> ClockState:
    """The system time, with the kernel's sync state and error bounds. Linux only."""
    answer, timex = adjtimex()
    now = time.time()
    unsynchronised = answer == TIME_ERROR or bool(timex.status & STA_UNSYNC)
    return ClockState(
        now=datetime.fromtimestamp(now, UTC), synchronised=not unsynchronised,
        max_error_s=timex.maxerror / 1e6, est_error_s=timex.esterror / 1e6,
        kernel_time=datetime.fromtimestamp(timex.time.tv_sec + timex.time.tv_usec / 1e6, UTC))


def trustworthy(state: ClockState) -> bool:
    """Synchronised, and not obviously a clock that was never set."""
    return state.synchronised and state.now >= EARLIEST
