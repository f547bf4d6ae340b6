"""Is the system clock set and kept synchronised?

A Raspberry Pi has no battery-backed clock: until NTP has synchronised after boot, the time
is whatever the image or fake-hwclock left, possibly days or years off. Every reading, event
and alert carries that time, and the rules' `for` timers and the store's points follow it.
"""

from __future__ import annotations

import asyncio

from gateway.clock_sync import EARLIEST, ClockProbe, ClockState, read_kernel_clock
from gateway.doctor.finding import Finding, fail, ok

__all__ = ["CHECK", "EARLIEST", "ClockProbe", "ClockState", "check_clock", "read_kernel_clock"]

CHECK = "clock"

_SYNC_FIX = ("sudo timedatectl set-ntp true (with systemd-timesyncd, or install chrony); "
             "`timedatectl timesync-status` shows whether a time server answers")


async def check_clock(probe: ClockProbe) -> Finding:
    state = await asyncio.to_thread(probe)
    subject = "system clock"
    shown = state.now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if state.now < EARLIEST:
        return fail(CHECK, subject, f"the clock says {shown}: it has never been set; "
                    "timestamps, `for` timers and the store's points would all be wrong",
                    _SYNC_FIX)
    if not state.synchronised:
        return fail(CHECK, subject, f"not synchronised (now {shown}): on a Pi without a "
                    "real-time clock, timestamps and `for` timers follow a clock that may be "
                    "far off", _SYNC_FIX)
    return ok(CHECK, subject, f"synchronised, {shown}, max error {_duration(state.max_error_s)}")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"
