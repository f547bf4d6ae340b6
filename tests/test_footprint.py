"""What a running gateway loads: libraries only the features it uses need stay out of memory."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from tests.helpers import make_config

REPO = Path(__file__).resolve().parent.parent

# loaded only by a configuration or a command that needs them
NOT_FOR_MQTT_DEVICES = {
    "influxdb_client",  # the store is written with one HTTP POST per batch
    "reactivex",
    "aiohttp",  # HTTP push devices, [metrics]
    "grafana_client",  # `scgw grafana provision`
    "apprise",  # notification targets other than mqtt://
    "prometheus_client",  # [metrics]
    "gpiozero",  # GPIO buttons
    "pymodbus",  # Modbus buses
    "serial",  # serial ports (pyserial), Modbus RTU
    "serial_asyncio_fast",
}


async def _loaded(tmp_path: Path, mosquitto: Mosquitto, target: str) -> set[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.loaded_modules", str(tmp_path), str(mosquitto.port),
        target, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return set(json.loads(out))


async def test_a_gateway_with_mqtt_devices_and_targets_loads_no_optional_library(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    loaded = await _loaded(tmp_path, mosquitto, "mqtt://sc/mods/notify/family")
    assert loaded & NOT_FOR_MQTT_DEVICES == set()
    assert {"gateway", "aiomqtt", "pydantic"} <= loaded  # it did run


@pytest.mark.parametrize("target", ["json://127.0.0.1:9/family"])
async def test_an_apprise_target_loads_apprise(tmp_path: Path, mosquitto: Mosquitto,
                                              target: str) -> None:
    assert "apprise" in await _loaded(tmp_path, mosquitto, target)


def test_the_cli_loads_what_only_its_other_commands_need_when_they_run() -> None:
    script = "import json, sys, gateway.ops.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True, cwd=REPO)
    loaded = set(json.loads(result.stdout))
    assert "gateway.ops.cli" in loaded
    assert {"rich", "gateway.ops.grafana.files", "gateway.ops.grafana.dashboard",
            "gateway.ops.grafana.provision", "grafana_client"} & loaded == set()


def _held_by_gateway(tmp_path: Path, count: int) -> int:
    devices = [{"id": f"gate-{n}", "kind": "temp_gate", "transport": "mqtt", "heartbeat_s": 300,
                "mqtt": {"topic": f"vendor/gate/{n}",
                         "readings": ["body_temp_c", "mask", "passage_count"]}}
               for n in range(count)]
    config = make_config(tmp_path, site="foot", devices=devices)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        gateway = Gateway(config)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    lanes = [gateway.ingress, gateway.bulk_ingress]
    assert sum(len(lane.topics) for lane in lanes if lane is not None) >= count
    return held


def test_devices_mapped_alike_cost_the_gateway_little_memory_each(tmp_path: Path) -> None:
    # a compound has hundreds of sensors of one model: what each costs beyond its own
    # configuration, in Python objects the gateway holds
    per_device = (_held_by_gateway(tmp_path, 600) - _held_by_gateway(tmp_path, 100)) / 500
    assert per_device < 2048


def test_the_service_starts_without_the_command_lines_libraries(tmp_path: Path) -> None:
    """`scgw run` is served without typer and rich (about 4 MiB of a Pi's memory): they load
    for the other commands, and rich to print a problem."""
    script = ("import json, sys\nfrom gateway.ops.entry import main\n"
              "import gateway.supervisor\n"
              "try:\n    main(['run', '--config', sys.argv[1]])\n"
              "except SystemExit as exc:\n"
              "    print(json.dumps([exc.code, sorted(sys.modules)]))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "none.toml")],
                            capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    code, loaded = json.loads(result.stdout)
    assert code == 2  # the missing file, said on stderr
    assert "cannot read" in result.stderr
    assert "typer" not in loaded
    assert "click" not in loaded
