"""The benchmark's verdicts on its targets: what counts as met."""

from __future__ import annotations

from bench.report import Row
from bench.targets import judge


def _ratio_row(case: str, ratio: float) -> Row:
    return Row("pipeline", case, f"{ratio:.2f}x", "", {"rate_ratio": ratio})


def _verdict(rows: list[Row], name_start: str) -> str:
    return next(r.result for r in judge(rows) if r.case.startswith(name_start))


def test_level_with_node_red_at_qos_1_is_not_ahead_of_it() -> None:
    case = "QoS 1, 10 % fevers: gateway / Node-RED batched (same run)"
    assert _verdict([_ratio_row(case, 1.0)], "ahead of batched") == "MISSED"
    assert _verdict([_ratio_row(case, 1.17)], "ahead of batched") == "met"


def test_twice_node_red_is_met_at_exactly_twice() -> None:
    case = "gateway / Node-RED batched (same run)"
    assert _verdict([_ratio_row(case, 2.0)], ">= 2x") == "met"
    assert _verdict([_ratio_row(case, 1.99)], ">= 2x") == "MISSED"


def test_a_ceiling_is_met_at_the_ceiling_itself() -> None:
    row = Row("alarm under load", "button release -> retained firing alert", "", "",
              {"p99_ms": 20.0})
    assert _verdict([row], "alarm p99") == "met"
    assert _verdict([Row(row.bench, row.case, "", "", {"p99_ms": 20.1})],
                    "alarm p99") == "MISSED"
