"""Node-RED running the pipeline's flow, on the same broker and store as the gateway.

The flow is what a Node-RED user builds for the task: mqtt in (every gate) -> json ->
switch (body_temp_c > 37.3) -> change (alert topic) -> mqtt out (QoS 1, retained, as the
gateway's alerts are), and from the json node a function that makes the reading a point
(tagged with its gate, stamped with the gate's own time) -> influxdb out, which writes to
VictoriaMetrics' InfluxDB 1.x /write endpoint. The batched flow puts a `join` node (up to
BATCH points or BATCH_S seconds) and `influxdb batch` in place of `influxdb out`, as a
Node-RED user does once one HTTP request per reading is too slow. Node-RED runs with a
user directory of its own in the work dir, its editor on a free loopback port without
authentication, and its telemetry off (no outside connections).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.children import Child
from bench.hostctl import BenchError
from bench.mqtt_wire import PUBLISH, Connection, parse_publish, puback_packet, publish_packet
from bench.peers.install import NodeRedInstall
from bench.pipeline import Alerted
from gateway.ops.private_servers import free_port

GATE_PREFIX = "bench/nr-gates"
ALERT_PREFIX = "bench/nr-alerts/fever"
MEASUREMENT = "nodered_gate"
PROBE = "probe"
BATCH = 500  # points per store write in the batched flow, as the gateway's default
BATCH_S = 1.0  # and the longest a point waits for its batch, as the gateway's flush


def nr_batch_text() -> str:
    return f"join of {BATCH} points or {BATCH_S:g} s -> influxdb batch"

_TO_POINT = """// the reading as one point: its fields, the gate as a tag, the gate's own time
const r = msg.payload;
msg.payload = [
    {body_temp_c: r.body_temp_c, mask: r.mask, passage_count: r.passage_count, time: r.ts},
    {device: msg.topic.substring(msg.topic.lastIndexOf("/") + 1)}
];
return msg;"""

_TO_BATCH_POINT = """// the reading as one point of a batch: the gate as a tag, the gate's own time
const r = msg.payload;
msg.payload = {
    measurement: "%s",
    fields: {body_temp_c: r.body_temp_c, mask: r.mask, passage_count: r.passage_count},
    tags: {device: msg.topic.substring(msg.topic.lastIndexOf("/") + 1)},
    timestamp: r.ts
};
return msg;"""


def flows(broker_port: int, store_url: str, *, batched: bool = False) -> list[dict[str, Any]]:
    """The flow, as Node-RED's flows.json."""
    store = urlparse(store_url)
    tab = "bench-pipeline"
    return [
        {"id": tab, "type": "tab", "label": "gates to alerts and store"},
        {"id": "broker", "type": "mqtt-broker", "name": "bench broker",
         "broker": "127.0.0.1", "port": str(broker_port), "clientid": "bench-node-red",
         "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True},
        {"id": "store", "type": "influxdb", "hostname": store.hostname, "port": store.port,
         "protocol": "http", "database": "bench", "name": "VictoriaMetrics",
         "usetls": False, "influxdbVersion": "1.x"},
        {"id": "gates-in", "type": "mqtt in", "z": tab, "name": "gates",
         "topic": f"{GATE_PREFIX}/+", "qos": "1", "datatype": "utf8", "broker": "broker",
         "nl": False, "rap": True, "inputs": 0, "wires": [["parse"]]},
        {"id": "parse", "type": "json", "z": tab, "name": "", "property": "payload",
         "action": "obj", "pretty": False, "wires": [["fever", "to-point"]]},
        {"id": "fever", "type": "switch", "z": tab, "name": "fever?",
         "property": "payload.body_temp_c", "propertyType": "msg",
         "rules": [{"t": "gt", "v": "37.3", "vt": "num"}], "checkall": "true",
         "repair": False, "outputs": 1, "wires": [["alert-topic"]]},
        {"id": "alert-topic", "type": "change", "z": tab, "name": "alert topic",
         "rules": [{"t": "change", "p": "topic", "pt": "msg", "from": f"{GATE_PREFIX}/",
                    "fromt": "str", "to": f"{ALERT_PREFIX}/", "tot": "str"}],
         "wires": [["alerts-out"]]},
        {"id": "alerts-out", "type": "mqtt out", "z": tab, "name": "alerts", "topic": "",
         "qos": "1", "retain": "true", "broker": "broker", "wires": []},
        *(_batched_store(tab) if batched else _store(tab)),
    ]


def _store(tab: str) -> list[dict[str, Any]]:
    return [
        {"id": "to-point", "type": "function", "z": tab, "name": "to point",
         "func": _TO_POINT, "outputs": 1, "wires": [["store-out"]]},
        {"id": "store-out", "type": "influxdb out", "z": tab, "influxdb": "store",
         "name": "readings", "measurement": MEASUREMENT, "precision": "ms",
         "retentionPolicy": "", "wires": []},
    ]


def _batched_store(tab: str) -> list[dict[str, Any]]:
    return [
        {"id": "to-point", "type": "function", "z": tab, "name": "to point",
         "func": _TO_BATCH_POINT % MEASUREMENT, "outputs": 1, "wires": [["join-points"]]},
        {"id": "join-points", "type": "join", "z": tab, "name": "points", "mode": "custom",
         "build": "array", "property": "payload", "propertyType": "msg", "key": "topic",
         "joiner": "\\n", "joinerType": "str", "accumulate": False, "timeout": f"{BATCH_S:g}",
         "count": str(BATCH), "reduceRight": False, "wires": [["store-out"]]},
        {"id": "store-out", "type": "influxdb batch", "z": tab, "influxdb": "store",
         "name": "readings", "precision": "ms", "retentionPolicy": "", "wires": []},
    ]


def settings(port: int) -> str:
    return f"""module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {port},
    flowFile: "flows.json",
    credentialSecret: false,
    telemetry: {{ enabled: false, updateNotification: false }},
    diagnostics: {{ enabled: false }},
    logging: {{ console: {{ level: "warn", metrics: false, audit: false }} }},
    editorTheme: {{ projects: {{ enabled: false }} }},
}};
"""


class NodeRed:
    """`async with NodeRed(...) as nr:` runs Node-RED until the block ends."""

    def __init__(self, install: NodeRedInstall, workdir: Path, broker_port: int,
                 store_url: str, *, batched: bool = False) -> None:
        self.install = install
        self.batched = batched
        self.workdir = workdir
        self.user_dir = workdir / "node-red"
        self.broker_port = broker_port
        self.store_url = store_url
        self.port = free_port()
        self._child: Child | None = None

    async def __aenter__(self) -> NodeRed:
        await asyncio.to_thread(self._write_files)
        self._child = Child("node-red", [
            str(self.install.node), str(self.install.red), "--userDir", str(self.user_dir),
            "--settings", str(self.user_dir / "settings.js"), "--port", str(self.port)],
            self.workdir, env={"NODE_RED_DISABLE_TELEMETRY": "1", "NO_UPDATE_NOTIFIER": "1"},
            json_lines=False)
        await self._child.__aenter__()
        try:
            await asyncio.to_thread(self._wait_flowing, 90.0)
        except BaseException:
            await self._child.end()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._child is not None:
            await self._child.end()

    @property
    def pid(self) -> int:
        if self._child is None:
            raise BenchError("Node-RED is not running")
        return self._child.pid

    def _write_files(self) -> None:
        self.user_dir.mkdir(parents=True, exist_ok=True)
        (self.user_dir / "settings.js").write_text(settings(self.port))
        (self.user_dir / "flows.json").write_text(
            json.dumps(flows(self.broker_port, self.store_url, batched=self.batched),
                       indent=2))

    def _wait_flowing(self, within_s: float) -> None:
        """Until a fever on a probe topic comes back as an alert: the whole flow is up."""
        deadline = time.monotonic() + within_s
        conn = Connection("127.0.0.1", self.broker_port, "bench-node-red-probe")
        try:
            conn.subscribe(f"{ALERT_PREFIX}/{PROBE}", qos=1)
            conn.sock.settimeout(0.5)
            body = json.dumps({"body_temp_c": 38.0, "mask": 1, "passage_count": 1, "seq": -1,
                               "ts": time.time_ns() // 1_000_000}).encode()
            while time.monotonic() < deadline:
                if self._child is not None and not self._child.running:
                    raise BenchError(f"Node-RED exited; see {self._child.log_path}")
                conn.sock.sendall(publish_packet(f"{GATE_PREFIX}/{PROBE}".encode(), body))
                try:
                    kind, flags, packet = conn.next_packet()
                except TimeoutError:
                    continue
                if kind == PUBLISH:
                    message = parse_publish(flags, packet)
                    if message.qos:
                        conn.sock.sendall(puback_packet(message.mid))
                    return
        finally:
            conn.close()
        raise BenchError(f"Node-RED's flow did not answer within {within_s:g} s; see "
                         f"{self.workdir / 'node-red.log'}")

    def errors_logged(self) -> int:
        """Errors Node-RED wrote to its log (failed store writes among them)."""
        try:
            text = (self.workdir / "node-red.log").read_text(errors="replace")
        except OSError:
            return 0
        return len(re.findall(r"\[error\]", text))

    def editor_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False


class NodeRedSystem:
    """Node-RED as a system under test of the pipeline benchmark."""

    name = "node-red"
    gate_prefix = GATE_PREFIX
    alert_filter = f"{ALERT_PREFIX}/+"
    alert_marker = ""  # every message is a new alert
    points_selector = f'{MEASUREMENT}_body_temp_c{{device=~"gate-.*"}}'

    def __init__(self, node_red: NodeRed) -> None:
        self.node_red = node_red

    @property
    def pid(self) -> int:
        return self.node_red.pid

    def alerted(self, topic: str, payload: str) -> Alerted | None:
        gate = topic.rsplit("/", 1)[-1]
        if gate == PROBE:
            return None
        try:
            body = json.loads(payload)
            return Alerted(gate, float(body["body_temp_c"]), int(body["seq"]))
        except (ValueError, KeyError, TypeError):
            return None

    async def losses(self) -> dict[str, int]:
        errors = await asyncio.to_thread(self.node_red.errors_logged)
        return {"errors_logged": errors} if errors else {}
