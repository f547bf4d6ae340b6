"""The configuration of transmission devices and the components behind them: what is wrong
is named with its key and device."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from drivers.gb26875.objects import ComponentAddress
from drivers.gb26875.server import Gb26875Server
from gateway.core.clock import ManualClock
from gateway.core.config import Gb26875Device
from gateway.core.counters import Counters
from gateway.core.problems import ConfigError
from tests.drivers.gb26875_rig import fire_devices
from tests.helpers import make_config

SERVER = {"host": "127.0.0.1", "port": 9030}


def _problems(tmp_path: Path, devices: list[dict[str, Any]],
              server: dict[str, Any] | None = SERVER) -> list[tuple[str, str, str | None]]:
    extra: dict[str, Any] = {} if server is None else {"gb26875": server}
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, site="f", devices=devices, **extra)
    return [(p.path, p.message, p.device) for p in caught.value.problems]


def test_the_table_maps_each_component_to_its_detector_and_place(tmp_path: Path) -> None:
    config = make_config(tmp_path, site="f", devices=fire_devices(), gb26875=SERVER)
    assert config.gb26875 is not None
    server = Gb26875Server(config.gb26875, [d for d in config.devices
                                            if isinstance(d, Gb26875Device)],
                           ManualClock(), Counters())
    places = server.panels[889].places
    place = places[(1, ComponentAddress(3, 17))]
    assert (place.device, place.building, place.floor, place.zone) == (
        "smoke-3-2-017", "3", 2, "east stair")
    assert set(places) == {(1, ComponentAddress(3, 17)), (1, ComponentAddress(5, 1))}
    assert server.panels[890].places == {}


def test_wrong_tables_are_named_by_key_and_device(tmp_path: Path) -> None:
    devices = fire_devices()
    twin = copy.deepcopy(devices[1]) | {"id": "smoke-twin"}
    twin["gb26875"]["component"] = "1-3-17"  # 1-3-017 again
    lost = copy.deepcopy(devices[1]) | {"id": "smoke-lost"}
    lost["gb26875"] = {"via": "fire-panel-9", "component": "1-1-001"}
    clash = copy.deepcopy(devices[3]) | {"id": "fire-panel-5", "kind": "access"}
    clash["gb26875"] = {"address": 889}
    problems = _problems(tmp_path, [*devices, twin, lost, clash])
    assert ("devices[4].gb26875.component",
            "component 1-3-17 of fire-panel-3 is already device smoke-3-2-017",
            "smoke-twin") in problems
    assert any(p[0] == "devices[5].gb26875.via" and "fire-panel-9" in p[1] for p in problems)
    assert any(p[0] == "devices[6].gb26875.address" and "fire-panel-3" in p[1]
               for p in problems)
    assert any(p[0] == "devices[6].kind" for p in problems)


def test_the_settings_say_one_role_and_the_section_is_needed(tmp_path: Path) -> None:
    both = fire_devices()[:1]
    both[0]["gb26875"] |= {"via": "x", "component": "1-1-1"}
    assert any("gb26875" in p[0] for p in _problems(tmp_path, both))
    malformed = fire_devices()[:2]
    malformed[1]["gb26875"]["component"] = "3-017"
    assert any(p[0].endswith("gb26875.component") for p in _problems(tmp_path, malformed))
    assert ("gb26875", "GB/T 26875.3 devices need a [gb26875] section", None) in _problems(
        tmp_path, fire_devices(), server=None)
