"""Debouncing a contact: a level counts once it has held still for the settle time.

Pure and clocked from outside: edges carry the time they happened, and `settle(at)`
asks what was stable by `at`. A change that reverts before it settles is a glitch (contact
bounce, or a tap too short to be meant) and leaves the button as it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Release:
    """A press that ended: how long it was held, and when (wall ms) it was let go."""

    held_s: float
    ts: int


class Debouncer:
    def __init__(self, settle_s: float) -> None:
        self._settle_s = settle_s
        self._stable = False  # released
        self._level = False  # as the last edge left it
        self._last_edge = 0.0
        self._change: tuple[float, int] | None = None  # first edge of an unsettled change
        self._pressed_since: float | None = None
        self.glitches = 0

    @property
    def deadline(self) -> float | None:
        """When the pending change will have settled, if nothing moves before."""
        return None if self._change is None else self._last_edge + self._settle_s

    def edge(self, pressed: bool, mono: float, ts: int) -> None:
        """Record an edge; call `settle(mono)` first so that older changes are decided."""
        if pressed == self._level:
            return
        self._level = pressed
        self._last_edge = mono
        if pressed == self._stable:
            self._change = None  # back where it was before settling: a glitch
            self.glitches += 1
        elif self._change is None:
            self._change = (mono, ts)

    def settle(self, at: float) -> Release | None:
        """Decide a pending change that has held still until `at`; a release ends a press."""
        deadline = self.deadline
        if deadline is None or at < deadline:
            return None
        assert self._change is not None
        started, ts = self._change
        self._change = None
        self._stable = self._level
        if self._stable:
            self._pressed_since = started
            return None
        if self._pressed_since is None:
            return None  # released without a press we saw: the pin started pressed
        held = started - self._pressed_since
        self._pressed_since = None
        return Release(held, ts)
