"""The Prometheus `/metrics` endpoint: backlog, age of the oldest unsent record, drops,
rejections, device status, rule evaluations. Served in the event loop by aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.core.clock import Clock
from gateway.core.config import MetricsConfig
from gateway.core.counters import Counters
from gateway.core.telemetry import TelemetryBuffer
from gateway.journal import Journal
from gateway.memory_ceiling import MemoryCeiling
from gateway.mqtt_link import MqttLink
from gateway.status import StatusBoard
from rules.engine import RuleEngine
from rules.runner import RuleRunner

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayView(Protocol):
    """What the endpoint reads of the running gateway (`gateway.supervisor.Gateway`)."""

    @property
    def clock(self) -> Clock: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def journal(self) -> Journal: ...
    @property
    def telemetry(self) -> TelemetryBuffer: ...
    @property
    def board(self) -> StatusBoard: ...
    @property
    def rules(self) -> RuleEngine: ...
    @property
    def runner(self) -> RuleRunner: ...
    @property
    def link(self) -> MqttLink: ...
    @property
    def memory(self) -> MemoryCeiling: ...
    @property
    def clock_synchronised(self) -> bool | None: ...
    def sink_cursors(self) -> dict[str, int]: ...
    def intake_backlog(self) -> dict[str, dict[str, float]]: ...


class _GatewayCollector(Collector):
    def __init__(self, gateway: GatewayView) -> None:
        self._gw = gateway
        self.oldest_ts: dict[str, int | None] = {}  # refreshed before every scrape

    def collect(self) -> Iterator[Metric]:
        gw = self._gw
        now = gw.clock.now_ms()
        backlog = GaugeMetricFamily("scgw_sink_backlog_records",
                                    "Journal records a sink has not delivered yet", labels=["sink"])
        age = GaugeMetricFamily("scgw_sink_oldest_unsent_age_seconds",
                                "Age of the oldest record a sink has not delivered",
                                labels=["sink"])
        for sink, cursor in gw.sink_cursors().items():
            backlog.add_metric([sink], max(gw.journal.last_seq - cursor, 0))
            oldest = self.oldest_ts.get(sink)
            age.add_metric([sink], 0.0 if oldest is None else max(now - oldest, 0) / 1000)
        yield backlog
        yield age
        waiting = GaugeMetricFamily("scgw_intake_backlog_messages",
                                    "Messages read and not yet handled, per broker session "
                                    "(devices, bulk); readings the rules have not evaluated",
                                    labels=["lane"])
        held = GaugeMetricFamily("scgw_intake_backlog_bytes",
                                 "Payload bytes of the messages read and not yet handled",
                                 labels=["lane"])
        waited = GaugeMetricFamily("scgw_intake_oldest_age_seconds",
                                   "Age of the oldest message read and not yet handled",
                                   labels=["lane"])
        for lane, figures in gw.intake_backlog().items():
            waiting.add_metric([lane], figures["messages"])
            held.add_metric([lane], figures["bytes"])
            waited.add_metric([lane], figures["oldest_s"])
        yield waiting
        yield held
        yield waited
        memory = gw.memory
        resident = GaugeMetricFamily("scgw_memory_resident_bytes",
                                     "Resident set size of the gateway process")
        resident.add_metric([], memory.resident)
        yield resident
        ceiling = GaugeMetricFamily("scgw_memory_ceiling_bytes",
                                    "The configured ceiling (limits.memory_mb)")
        ceiling.add_metric([], memory.ceiling)
        yield ceiling
        telemetry = GaugeMetricFamily("scgw_telemetry_buffered", "Readings in the memory buffer")
        telemetry.add_metric([], len(gw.telemetry))
        yield telemetry
        devices = GaugeMetricFamily("scgw_device_online", "1 when the device is online",
                                    labels=["device", "kind"])
        counts = {"online": 0, "offline": 0}
        for device, kind, state in gw.board.statuses():
            devices.add_metric([device, kind.value], 1 if state == "online" else 0)
            counts[state.value] += 1
        yield devices
        by_status = GaugeMetricFamily("scgw_devices", "Devices by status", labels=["status"])
        for state_name, n in counts.items():
            by_status.add_metric([state_name], n)
        yield by_status
        alerts = GaugeMetricFamily("scgw_active_alerts", "Alerts firing or acknowledged")
        alerts.add_metric([], len(gw.rules.active()))
        yield alerts
        connected = GaugeMetricFamily("scgw_broker_connected", "1 while the broker is connected")
        connected.add_metric([], 1 if gw.link.connected else 0)
        yield connected
        if gw.clock_synchronised is not None:
            synced = GaugeMetricFamily("scgw_clock_synchronised",
                                       "1 while the system clock is NTP-synchronised")
            synced.add_metric([], 1 if gw.clock_synchronised else 0)
            yield synced
        rules = gw.runner.stats
        evaluations = CounterMetricFamily("scgw_rule_evaluations",
                                          "Records evaluated by the rules")
        evaluations.add_metric([], rules.evaluations)
        yield evaluations
        latency = CounterMetricFamily("scgw_rule_evaluation_seconds",
                                      "Time spent evaluating rules")
        latency.add_metric([], rules.seconds)
        yield latency
        yield from _counters(gw)


def _counters(gw: GatewayView) -> Iterator[Metric]:
    """Every gateway counter: drops, rejections, retries, ... as scgw_<name>_total."""
    grouped: dict[str, list[tuple[dict[str, str], int]]] = {}
    for name, label_pairs, value in gw.counters.items():
        grouped.setdefault(name, []).append((dict(label_pairs), value))
    for name, rows in grouped.items():
        keys = sorted({k for row_labels, _ in rows for k in row_labels})
        family = CounterMetricFamily(f"scgw_{name}", f"Gateway counter {name}", labels=keys)
        for row_labels, value in rows:
            family.add_metric([row_labels.get(k, "") for k in keys], value)
        yield family


class MetricsServer:
    """GET /metrics on the configured address."""

    def __init__(self, gateway: GatewayView, config: MetricsConfig) -> None:
        self._gw = gateway
        self._config = config
        self._collector = _GatewayCollector(gateway)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)

    async def render(self) -> bytes:
        for sink, cursor in self._gw.sink_cursors().items():
            batch = await self._gw.journal.read_after(cursor, 1)
            self._collector.oldest_ts[sink] = batch.entries[0].record.ts if batch.entries \
                else None
        return generate_latest(self._registry)

    async def run(self) -> None:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=await self.render(), headers={"Content-Type": CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._config.host, self._config.port).start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
