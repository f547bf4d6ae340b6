"""ThingsBoard's IoT gateway polling the Modbus benchmark's devices, on the bench broker.

Its "ThingsBoard" is the bench's Mosquitto: it connects with an access token as the user
name and publishes to v1/gateway/*. A real ThingsBoard answers the session-limits request
that the gateway sends on connecting, and the gateway publishes nothing until that
answer comes; here a small responder answers it with "no limits". Its Modbus connector is
configured for the same devices, the same ten input registers (one telemetry key each, as
its configuration asks) and the same poll period as the gateway; every value is reported
on every poll (report strategy ON_RECEIVED), as the gateway does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from bench.children import Child
from bench.hostctl import BenchError
from bench.mqtt_wire import PUBLISH, Connection, parse_publish, puback_packet, publish_packet
from bench.peers.install import ThingsBoardInstall

LAUNCHER = Path(__file__).resolve().parent / "tb_launch.py"
REQUESTS = "v1/devices/me/rpc/request/+"
RESPONSE = "v1/devices/me/rpc/response/"
TELEMETRY = "v1/gateway/telemetry"

# the answer of a ThingsBoard with rate limits switched off
_NO_LIMITS = {"rateLimits": {}, "gatewayRateLimits": {}, "maxInflightMessages": 10_000,
              "maxPayloadSize": 65_536}

REGISTERS = ("tilt", "installed_tilt", "water_level", "gas_high", "gas_low", "battery",
             "status_open", "status_tamper", "status_fault", "status_battery")


def gateway_config(broker_port: int) -> dict[str, Any]:
    return {
        "thingsboard": {
            "host": "127.0.0.1", "port": broker_port, "remoteShell": False,
            "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600, "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench-thingsboard"},
            "qos": 1, "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100_000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }


def modbus_config(ports: list[int], poll_ms: int) -> dict[str, Any]:
    slaves = [{
        "host": "127.0.0.1", "port": port, "type": "tcp", "method": "socket", "unitId": 1,
        "deviceName": f"manhole-{index:02d}", "deviceType": "manhole", "timeout": 35,
        "byteOrder": "BIG", "wordOrder": "BIG", "retries": 0, "retryOnEmpty": False,
        "retryOnInvalid": False, "pollPeriod": poll_ms, "connectAttemptTimeMs": 5000,
        "connectAttemptCount": 5, "waitAfterFailedAttemptsMs": 300_000,
        "attributes": [], "attributeUpdates": [], "rpc": [],
        "timeseries": [{"tag": tag, "type": "16uint", "functionCode": 4, "objectsCount": 1,
                        "address": address} for address, tag in enumerate(REGISTERS)],
    } for index, port in enumerate(ports)]
    return {"master": {"slaves": slaves}}


def logs_config() -> dict[str, Any]:
    """Warnings and errors to stderr (the benchmark's log of it); no log files.

    Its Modbus connector uses a pymodbus API that pymodbus warns about on every value it
    decodes; that warning is turned off so that the logging is not counted against it.
    """
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "level": "WARNING", "stream": "ext://sys.stderr"}},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {"pymodbus": {"level": "ERROR"}, "pymodbus.logging": {"level": "ERROR"}},
    }


class SessionLimits(threading.Thread):
    """Answers the gateway's getSessionLimits RPC, as ThingsBoard itself would."""

    def __init__(self, broker_port: int) -> None:
        super().__init__(name="bench.tb.session-limits", daemon=True)
        self._conn = Connection("127.0.0.1", broker_port, "bench-thingsboard-server")
        self._conn.subscribe(REQUESTS, qos=1)
        self._conn.sock.settimeout(0.5)
        self._stopping = threading.Event()
        self.answered = 0

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, flags, body = self._conn.next_packet()
            except TimeoutError:
                continue
            except OSError:
                return
            if kind != PUBLISH:
                continue
            message = parse_publish(flags, body)
            if message.qos:
                self._conn.sock.sendall(puback_packet(message.mid))
            try:
                method = json.loads(message.payload).get("method")
            except ValueError:
                continue
            if method == "getSessionLimits":
                request_id = message.topic.rsplit("/", 1)[-1]
                self._conn.sock.sendall(publish_packet(
                    (RESPONSE + request_id).encode(), json.dumps(_NO_LIMITS).encode(), qos=0))
                self.answered += 1

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
        self._conn.close()


class ThingsBoardGateway:
    """`async with ThingsBoardGateway(...) as tb:` runs it until the block ends."""

    def __init__(self, install: ThingsBoardInstall, workdir: Path, broker_port: int,
                 device_ports: list[int], poll_ms: int) -> None:
        self.install = install
        self.workdir = workdir / "thingsboard"
        self.broker_port = broker_port
        self.device_ports = device_ports
        self.poll_ms = poll_ms
        self._child: Child | None = None
        self._limits: SessionLimits | None = None

    async def __aenter__(self) -> ThingsBoardGateway:
        await asyncio.to_thread(self._write_config)
        self._limits = await asyncio.to_thread(SessionLimits, self.broker_port)
        self._limits.start()
        config = self.workdir / "config"
        self._child = Child("thingsboard-gateway", [
            str(self.install.python), str(LAUNCHER), str(config / "tb_gateway.json")],
            self.workdir, cwd=self.workdir, env={"TB_GW_CONFIG_DIR": str(config)},
            json_lines=False)
        try:
            await self._child.__aenter__()
        except BaseException:
            await asyncio.to_thread(self._limits.stop)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._child is not None:
                await self._child.end()
        finally:
            if self._limits is not None:
                await asyncio.to_thread(self._limits.stop)

    @property
    def pid(self) -> int:
        if self._child is None:
            raise BenchError("ThingsBoard's gateway is not running")
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    @property
    def log_path(self) -> Path:
        return self.workdir / "thingsboard-gateway.log"

    def _write_config(self) -> None:
        config = self.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        for name, body in (("tb_gateway.json", gateway_config(self.broker_port)),
                           ("modbus.json", modbus_config(self.device_ports, self.poll_ms)),
                           ("logs.json", logs_config())):
            (config / name).write_text(json.dumps(body, indent=2))
