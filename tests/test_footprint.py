"""What a running gateway loads: libraries only the features it uses need stay out of memory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.services import Mosquitto

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
    script = "import json, sys, gateway.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True, cwd=REPO)
    loaded = set(json.loads(result.stdout))
    assert "gateway.cli" in loaded
    assert {"rich", "gateway.grafana.files", "gateway.grafana.dashboard",
            "gateway.grafana.provision", "grafana_client"} & loaded == set()
