"""Counters and log-once bookkeeping stay small and quick whatever the input brings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.core.counters import Counters

log = logging.getLogger("tests.counters")
quiet = logging.getLogger("tests.counters.quiet")
quiet.propagate = False
quiet.addHandler(logging.NullHandler())


def test_a_rejection_is_logged_once_per_device_and_reason_until_it_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    caplog.set_level(logging.WARNING, logger=log.name)
    for _ in range(3):
        counters.reject(log, "sos-1", "malformed_json", "not JSON")
        counters.reject(log, "sos-2", "malformed_json", "not JSON")
    counters.recovered("sos-1")
    counters.reject(log, "sos-1", "malformed_json", "not JSON")
    counters.reject(log, "sos-2", "malformed_json", "not JSON")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["sos-1", "sos-2",
                                                                      "sos-1"]
    assert counters.get("rejected", reason="malformed_json") == 8


def test_recovery_does_not_walk_every_logged_key() -> None:
    counters = Counters()
    for n in range(20_000):  # warnings logged once each, of many kinds
        counters.log_once(quiet, ("notify", "no_target", f"group-{n}"), "x")
    counters.reject(quiet, "sos-1", "malformed_json", "not JSON")
    walks: list[str] = []

    class WatchedSet(set[tuple[str, ...]]):
        def __iter__(self) -> Iterator[tuple[str, ...]]:
            walks.append("logged")
            return super().__iter__()

    class WatchedTimes(dict[tuple[str, ...], float]):
        def __iter__(self) -> Iterator[tuple[str, ...]]:
            walks.append("last_logged")
            return super().__iter__()

        def items(self) -> Any:
            walks.append("last_logged.items")
            return super().items()

        def keys(self) -> Any:
            walks.append("last_logged.keys")
            return super().keys()

    counters._logged = WatchedSet(counters._logged)
    counters._last_logged = WatchedTimes(counters._last_logged)
    for _ in range(2_000):  # a good message from a device: one recovery each
        counters.recovered("sos-1")
    # a walk over the 20,000 keys per message took seconds; a lookup, microseconds
    assert walks == []
    assert len(counters._logged) == 20_000  # every warning still logged once, no more


def test_a_huge_detail_is_cut_short_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)
    Counters().reject(log, "sos-1", "bad_value", "x" * 10_000_000)
    (record,) = caplog.records
    assert len(record.getMessage()) < 500
    assert "10000000 characters" in record.getMessage()


def test_a_key_made_once_counts_as_the_labels_do() -> None:
    counters = Counters()
    key = Counters.key("ingress_messages", device="gate-1")
    for _ in range(3):
        counters.inc_key(key)
    counters.inc("ingress_messages", device="gate-1")
    assert counters.get("ingress_messages", device="gate-1") == 4
    assert counters.snapshot() == {"ingress_messages{device=gate-1}": 4}
