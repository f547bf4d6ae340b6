"""The gateway as a system under test of the pipeline benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from bench import configs
from bench.gateway_bench import Servers
from bench.hostctl import GatewayProcess
from bench.pipeline import Alerted
from gateway.core.model import Alert, AlertState

PIPELINE_SITE = "pipe"
FEVER_RULE_ID = "bench.fever"
_LOSSES = ("dropped", "rejected", "handler_errors", "rule_errors", "store_rejected",
           "mqtt_publish_failed")


class GatewaySystem:
    """A running bench.host gateway with the 200 gates and the fever rule."""

    name = "gateway"
    gate_prefix = configs.GATE_PREFIX
    alert_marker = '"state":"firing"'

    def __init__(self, process: GatewayProcess, site: str = PIPELINE_SITE) -> None:
        self.process = process
        self.alert_filter = f"sc/{site}/alerts/{FEVER_RULE_ID}/+"
        self.points_selector = f'sc_temp_gate_body_temp_c{{site="{site}"}}'
        self._decoder = msgspec.json.Decoder(Alert)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alerted(self, topic: str, payload: str) -> Alerted | None:
        try:
            alert = self._decoder.decode(payload)
        except msgspec.MsgspecError:
            return None
        if alert.state is not AlertState.FIRING or not isinstance(alert.value, int | float):
            return None
        return Alerted(alert.device, float(alert.value), None)

    async def losses(self) -> dict[str, int]:
        counters = (await self.process.stats()).counters
        return {k: counters[k] for k in _LOSSES if k in counters}


def pipeline_gateway(workdir: Path, srv: Servers, *, gates: int = 200, buttons: int = 10,
                     store_batch: int | None = None) -> dict[str, Any]:
    """The pipeline's gateway config: the gates, GPIO elder buttons, the fever rule;
    everything else at its defaults unless `store_batch` sets store.batch_size."""
    devices = ([configs.temp_gate(i) for i in range(gates)]
               + [configs.button(i) for i in range(buttons)])
    config = configs.gateway(PIPELINE_SITE, workdir, srv.mosquitto.port, srv.store.url,
                             devices)
    config["rule_files"] = configs.pipeline_rules()
    if store_batch is not None:
        config["store"]["batch_size"] = store_batch
    return config
