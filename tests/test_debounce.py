"""The debouncer: bounces and too-short taps are glitches, never a stuck button."""

from __future__ import annotations

import pytest

from drivers.debounce import Debouncer, Release


def _run(deb: Debouncer, edges: list[tuple[bool, float]], end: float) -> list[Release]:
    out = []
    for pressed, t in edges:
        if (r := deb.settle(t)) is not None:
            out.append(r)
        deb.edge(pressed, t, int(t * 1000))
    if (r := deb.settle(end)) is not None:
        out.append(r)
    return out


def test_a_clean_press() -> None:
    (release,) = _run(Debouncer(0.05), [(True, 1.0), (False, 1.3)], 2.0)
    assert release.held_s == pytest.approx(0.3)
    assert release.ts == 1300


def test_contact_bounce_on_both_edges() -> None:
    deb = Debouncer(0.05)
    edges = [(True, 1.0), (False, 1.002), (True, 1.004), (False, 1.4), (True, 1.401),
             (False, 1.403)]
    (release,) = _run(deb, edges, 2.0)
    # from the press edge that held to the release edge that held
    assert release.held_s == pytest.approx(0.399)
    assert release.ts == 1403
    assert deb.glitches == 2


def test_a_tap_shorter_than_the_settle_time_leaves_no_stuck_button() -> None:
    # the bug this guards against: a 20 ms tap left the button "held", so the next real
    # press ten minutes later was read as a 600 s hold, a cancel
    deb = Debouncer(0.05)
    (release,) = _run(deb, [(True, 0.0), (False, 0.02), (True, 600.0), (False, 600.3)], 601.0)
    assert release.held_s == pytest.approx(0.3)
    assert release.ts == 600300
    assert deb.glitches == 1


def test_zero_settle_time_takes_every_edge() -> None:
    assert _run(Debouncer(0.0), [(True, 5.0), (False, 5.0)], 5.0) == [Release(0.0, 5000)]


def test_starting_pressed_reports_nothing_until_a_full_press() -> None:
    deb = Debouncer(0.05)
    assert _run(deb, [(True, 0.0)], 0.01) == []
    assert deb.deadline == 0.05
