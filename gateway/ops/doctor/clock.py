"""Is the system clock set and kept synchronised?

A Raspberry Pi has no battery-backed clock: until NTP has synchronised after boot, the time
is whatever the image or fake-hwclock left, possibly days or years off. Every reading, event
and alert carries that time, and the rules' `for` timers and the store's points follow it.

The time shown is the system time, the one the gateway stamps with; adjtimex contributes the
sync state and the error bounds. When adjtimex's own time field is further from the system
time than the kernel's maximum error, that is a finding of its own: the kernel (typically a
container's or a sandbox's, which emulate adjtimex) is not reporting on the clock in use.
"""

from __future__ import annotations

import asyncio

from gateway.clock_sync import EARLIEST, ClockProbe, ClockState, read_kernel_clock
from gateway.ops.doctor.finding import Finding, fail, ok, warn

__all__ = ["CHECK", "EARLIEST", "ClockProbe", "ClockState", "check_clock", "read_kernel_clock"]

CHECK = "clock"

_SYNC_FIX = ("sudo timedatectl set-ntp true (with systemd-timesyncd, or install chrony); "
             "`timedatectl timesync-status` shows whether a time server answers")
_DISAGREE_FIX = ("nothing to fix in the gateway: it stamps with the system time shown above. "
                 "In a container or sandbox the host keeps the clock; on a Pi, reboot and "
                 "report the kernel version if this persists")


async def check_clock(probe: ClockProbe) -> list[Finding]:
    state = await asyncio.to_thread(probe)
    findings = [_sync_finding(state)]
    if state.kernel_disagrees():
        offset = state.kernel_offset_s or 0.0
        findings.append(warn(
            CHECK, "kernel clock (adjtimex)",
            f"adjtimex reports a time {abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'}"
            f" the system time, more than its own maximum error "
            f"({_duration(state.max_error_s)}): the kernel's sync state may not describe the "
            "clock in use", _DISAGREE_FIX))
    return findings


def _sync_finding(state: ClockState) -> Finding:
    subject = "system clock"
    shown = state.now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if state.now < EARLIEST:
        return fail(CHECK, subject, f"the clock says {shown}: it has never been set; "
                    "timestamps, `for` timers and the store's points would all be wrong",
                    _SYNC_FIX)
    if not state.synchronised:
        return fail(CHECK, subject, f"the kernel says the clock is not synchronised (now "
                    f"{shown}): on a Pi without a real-time clock, timestamps and `for` timers "
                    "follow a clock that may be far off", _SYNC_FIX)
    return ok(CHECK, subject, f"synchronised, {shown}, max error {_duration(state.max_error_s)}")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"
