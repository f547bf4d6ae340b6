"""Handing the interpreter lock to the journal thread while someone waits for its commit.

The journal commits on a thread of its own and takes the interpreter lock back after each
of its SQLite calls. CPython gives a waiting thread the lock when the holder releases it,
or asks the holder to drop it once the waiter has waited a whole switch interval. The
event loop releases the lock for every system call (a socket read, a `select()`) and takes
it straight back; every release wakes the waiting thread and starts its wait over. A loop
that makes a system call more often than once per interval keeps the journal thread
waiting until it happens to win a release: with the loop busy in turns of 0.2 ms, the
commit of one alarm took seconds instead of a millisecond.

So while a durable commit (an alarm; an alert before it is published) is on the journal
thread, the switch interval is COMMIT_SWITCH_INTERVAL_S, and the journal thread's timed
waits end on time (Linux rounds them up by the thread's timer slack, 50 µs by default,
which would make a shorter interval no shorter). Other commits, which nobody waits for,
and the loop while the thread is idle, keep the longer interval and hand over less often.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005  # the process's own, from the journal's opening on
COMMIT_SWITCH_INTERVAL_S = 0.00001  # while a durable commit is on the journal thread
TIMER_SLACK_NS = 1000  # the journal thread's: its waits for the lock end within 1 µs
_PR_SET_TIMERSLACK = 29  # prctl(2)


@dataclass
class _Sooner:
    """The durable commits under way in the process (a test runs several journals), and
    the interval from before the first of them."""

    under_way: int = 0
    before: float = SWITCH_INTERVAL_S


_sooner = _Sooner()


def shorter_switches() -> None:
    """The process's switch interval at SWITCH_INTERVAL_S at most (5 ms is CPython's)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def precise_waits() -> None:
    """On the journal thread, as it starts: its timed waits end within TIMER_SLACK_NS.

    Linux only; elsewhere, or where the C library will not, the waits are as long as the
    system makes them (the commit then waits longer for the lock; nothing else changes).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(TIMER_SLACK_NS), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_TIMERSLACK)")
    except (OSError, AttributeError) as exc:
        log.debug("journal thread keeps the default timer slack: %s", exc)


@contextlib.contextmanager
def handed_over_sooner(durable: bool) -> Iterator[None]:
    """Around a commit on the journal thread: the short interval if it is `durable`."""
    if not durable:
        yield
        return
    if _sooner.under_way == 0:
        _sooner.before = sys.getswitchinterval()
        sys.setswitchinterval(min(_sooner.before, COMMIT_SWITCH_INTERVAL_S))
    _sooner.under_way += 1
    try:
        yield
    finally:
        _sooner.under_way -= 1
        if _sooner.under_way == 0:
            sys.setswitchinterval(_sooner.before)
