"""The performance targets, and each one judged against the measured (median) figures."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.report import Row

# the figure that picks the median run of each benchmark's rows
HEADLINE = {
    "pipeline": "sustained_per_s", "alarm under load": "p99_ms", "alarm path": "p99_ms",
    "modbus": "polls_per_s",
    "RS-485": "efficiency_percent", "footprint": "rss_kib", "replay": "points_per_s",
    "journal append": "records_per_s", "alarm latency": "p99_ms",
    "MQTT ingress": "messages_per_s", "memory": "rss_kib", "idle CPU": "cpu_percent",
    "compound-day": "bytes_per_day", "city": "parcels_per_s", "storm": "p99_ms",
    "broker-replay": "max_ms", "flood": "flood_p99_ms", "push-storm": "p99_ms",
    "push-replay": "max_ms", "push-flood": "flood_p99_ms",
}
# a row whose own figure is not the benchmark's headline (e.g. a ratio row)
HEADLINE_KEYS = ("rate_ratio", "polls_ratio", "cpu_percent", "startup_s", "hwm_kib",
                 "fsyncs_per_s", "p99_ms")

# which bench/results/<name>.json a benchmark's rows go to
RESULT_FILES = {
    "pipeline": "pipeline", "alarm under load": "alarm_load", "alarm path": "alarm_path",
    "modbus": "modbus", "RS-485": "rs485", "footprint": "footprint", "replay": "replay",
    "compound-day": "compound_day", "city": "city", "storm": "storm",
    "broker-replay": "storm", "flood": "storm", "push-storm": "push_storm",
    "push-replay": "push_storm", "push-flood": "push_storm",
}


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    bench: str
    case: str  # the start of the row's case
    key: str
    limit: float
    meets: Callable[[float, float], bool]  # (figure, limit): operator.ge, le or gt
    show: Callable[[float], str]


TARGETS = (
    Target(">= 20,000 events/s through rules to MQTT and the store, alert p99 <= 50 ms, "
           "no loss", "pipeline", "gateway:", "sustained_p99_50_ms_per_s", 20_000, operator.ge,
           lambda v: f"{v:,.0f} events/s"),
    Target(">= 2x the batched Node-RED flow, same run", "pipeline",
           "gateway / Node-RED batched", "rate_ratio", 2.0, operator.ge, lambda v: f"{v:.2f}x"),
    Target(">= 5,000 events/s at QoS 1 with 10 % fevers, alert p99 <= 50 ms, no loss",
           "pipeline", "gateway (QoS 1, 10 % fevers):", "sustained_p99_50_ms_per_s", 5_000,
           operator.ge, lambda v: f"{v:,.0f} events/s"),
    Target("ahead of batched Node-RED at QoS 1 with 10 % fevers, same run", "pipeline",
           "QoS 1, 10 % fevers: gateway / Node-RED batched", "rate_ratio", 1.0,
           operator.gt,  # ahead: level is not ahead
           lambda v: f"{v:.2f}x"),
    Target("alarm p99 <= 20 ms under load", "alarm under load", "button release",
           "p99_ms", 20.0, operator.le, lambda v: f"{v:.1f} ms"),
    Target("RSS <= 50 MiB with 1,000 devices", "footprint", "1000 MQTT devices (",
           "rss_kib", 50 * 1024, operator.le, lambda v: f"{v / 1024:.1f} MiB"),
    Target("start-up <= 0.5 s with 1,000 devices", "footprint", "1000 MQTT devices, start-up",
           "startup_s", 0.5, operator.le, lambda v: f"{v:.2f} s"),
    Target("idle CPU <= 1 % of one core with 1,000 devices", "footprint",
           "1000 MQTT devices, idle CPU", "cpu_percent", 1.0, operator.le, lambda v: f"{v:.2f} %"),
    Target("RS-485 bus efficiency >= 90 % of the theoretical maximum", "RS-485", "",
           "efficiency_percent", 90.0, operator.ge, lambda v: f"{v:.1f} %"),
    Target("compound day: disk writes <= 100 MB per day", "compound-day", "",
           "bytes_per_day", 100e6, operator.le, lambda v: f"{v / 1e6:,.1f} MB/day"),
    Target("compound day: <= 1 fsync per second", "compound-day", "", "fsyncs_per_s", 1.0,
           operator.le, lambda v: f"{v:.2f} /s"),
    Target("backlog drain >= 20,000 points/s", "replay", "", "points_per_s", 20_000, operator.ge,
           lambda v: f"{v:,.0f} points/s"),
)


def judge(rows: Sequence[Row]) -> list[Row]:
    out = []
    for target in TARGETS:
        row = next((r for r in rows if r.bench == target.bench
                    and r.case.startswith(target.case) and target.key in r.data), None)
        if row is None:
            continue
        value = float(row.data[target.key])
        met = target.meets(value, target.limit)
        out.append(Row("target", target.name, "met" if met else "MISSED",
                       f"measured {target.show(value)}",
                       {"bench": target.bench, "value": value, "limit": target.limit,
                        "met": int(met)}))
    return out
