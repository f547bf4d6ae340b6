"""CPU time and memory of any process, read from /proc the same way for every system.

The gateway, Node-RED and ThingsBoard's gateway are measured from outside with the same
reads, so no system reports on itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float  # user + system time so far
    rss_kib: int
    hwm_kib: int  # peak resident set size (VmHWM)
    threads: int


def sample(pid: int) -> ProcSample:
    """Blocking but cheap (procfs); raises ProcessLookupError when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            status = f.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # the command name in parentheses may hold spaces: split after its closing bracket
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    values: dict[str, int] = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    return ProcSample((utime + stime) / _TICKS, values.get("VmRSS", 0), values.get("VmHWM", 0),
                      values.get("Threads", 0))
