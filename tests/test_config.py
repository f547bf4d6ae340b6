"""Configuration validation: every problem reported with its key path and device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.problems import ConfigError

GOOD = """
site = "c1"
[store]
url = "http://127.0.0.1:8428"
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 17, led_pin = 27 }
[[devices]]
id = "sos-2"
kind = "elder_button"
transport = "mqtt"
heartbeat_s = 60
mqtt = { topic = "zigbee2mqtt/sos-2", event_key = "action", events = { single = "press" } }
"""

# three deliberate errors: an unknown top-level key, a pin out of range, a bad kind
THREE_ERRORS = """
site = "c1"
colour = "blue"
[store]
url = "http://127.0.0.1:8428"
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 99 }
[[devices]]
id = "smoke-7"
kind = "toaster"
transport = "mqtt"
mqtt = { topic = "a/b" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.site == "c1"
    assert [d.id for d in config.devices] == ["elder-1", "sos-2"]
    assert config.client_id == "scgw-c1"


def test_three_errors_are_all_reported_with_key_paths_and_devices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, THREE_ERRORS))
    problems = {(p.path, p.device) for p in caught.value.problems}
    assert problems == {
        ("colour", None),
        ("devices[0].gpio.pin", "elder-1"),
        ("devices[1].kind", "smoke-7"),
    }
    assert "unknown key" in str(caught.value)


def test_cross_field_problems_name_the_device(tmp_path: Path) -> None:
    text = GOOD.replace("led_pin = 27", "led_pin = 17").replace(
        'id = "sos-2"', 'id = "elder-1"')
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    messages = [str(p) for p in caught.value.problems]
    assert any("devices[1].id (device elder-1): duplicate device id" in m for m in messages)
    assert "devices[0].gpio.led_pin (device elder-1): GPIO 17 is already used by device " \
        "elder-1" in messages


def test_ingress_event_types_must_exist_in_the_kind_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, GOOD.replace('single = "press"', 'single = "explode"')))
    (problem,) = caught.value.problems
    assert (problem.path, problem.device) == ("devices[1].mqtt.events.single", "sos-2")
    assert "'explode' is not an event of elder_button devices" in problem.message


def test_inline_readings_must_exist_in_the_kind_model(tmp_path: Path) -> None:
    text = GOOD.replace('events = { single = "press" } }',
                        'events = { single = "press" }, readings = ["batery"] }')
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem.path == "devices[1].mqtt.readings[0]"
    assert "'batery' is not a reading of elder_button devices" in problem.message


def test_a_short_pseudonym_key_is_refused(tmp_path: Path) -> None:
    text = 'pseudonym_key_env = "K"\n' + GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), env={"K": "short"})
    assert [p.path for p in caught.value.problems] == ["pseudonym_key_env"]
    load_config(_write(tmp_path, text), env={"K": "long-enough-key-0123"})


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, 'site = "c1"\n[store\n'))
    assert "line 2" in str(caught.value)


def test_missing_token_variable_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace('url = "http://127.0.0.1:8428"',
                        'url = "http://127.0.0.1:8428"\ntoken_env = "SCGW_TEST_NO_SUCH_VAR"')
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), env={})
    assert [p.path for p in caught.value.problems] == ["store.token_env"]


def test_store_credentials_must_fit_the_api(tmp_path: Path) -> None:
    def problems(store: str) -> list[str]:
        text = GOOD.replace('url = "http://127.0.0.1:8428"', store)
        try:
            load_config(_write(tmp_path, text), env={"P": "pw", "T": "token"})
        except ConfigError as exc:
            return [p.path for p in exc.problems]
        return []

    v1 = 'api = "v1"\nurl = "http://127.0.0.1:8086"\ndatabase = "scgw"'
    assert problems(v1 + '\nusername = "scgw"\npassword_env = "P"') == []
    assert problems(v1 + '\ntoken_env = "T"') == ["store.token_env"]
    assert problems(v1 + '\nusername = "scgw"') == ["store.password_env"]
    assert problems(v1 + '\nusername = "scgw"\npassword_env = "NOT_SET"') == [
        "store.password_env"]
    assert problems('url = "http://127.0.0.1:8086"\nusername = "scgw"\npassword_env = "P"') == [
        "store.username"]
    assert problems('api = "v3"\nurl = "http://127.0.0.1:8086"') == ["store.api"]


def _scgw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False,
                          env=None if env is None else os.environ | env)


def test_check_config_cli_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    result = _scgw("check-config", str(_write(tmp_path, THREE_ERRORS)))
    assert result.returncode == 2
    assert "3 problem(s)" in result.stderr
    for path in ("colour", "devices[0].gpio.pin (device elder-1)",
                 "devices[1].kind (device smoke-7)"):
        assert path in result.stderr


def test_run_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    result = _scgw("run", "--config", str(_write(tmp_path, THREE_ERRORS)))
    assert result.returncode == 2
    assert "devices[0].gpio.pin" in result.stderr


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    result = _scgw("check-config", str(_write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_run_says_clearly_when_gpio_is_unavailable(tmp_path: Path) -> None:
    # this machine has no GPIO pin library: a real Pi would need python3-lgpio
    text = GOOD.replace('url = "http://127.0.0.1:8428"', 'url = "http://127.0.0.1:8428"\n'
                        '[journal]\npath = "journal.db"')
    result = _scgw("run", "--config", str(_write(tmp_path, text)))
    assert result.returncode == 2
    assert "no GPIO library could be loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_says_clearly_when_the_named_pin_library_is_missing(tmp_path: Path) -> None:
    # gpiozero's own switch naming a library this machine lacks raises ImportError
    text = GOOD.replace('url = "http://127.0.0.1:8428"', 'url = "http://127.0.0.1:8428"\n'
                        '[journal]\npath = "journal.db"')
    result = _scgw("run", "--config", str(_write(tmp_path, text)),
                   env={"GPIOZERO_PIN_FACTORY": "lgpio"})
    assert result.returncode == 2
    assert "no GPIO library could be loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_huge_value_is_cut_short_in_the_printed_problem(tmp_path: Path) -> None:
    huge = "x" * 1_000_000
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, GOOD.replace('single = "press"', f'single = "{huge}"')))
    assert len(str(caught.value)) < 1_000
    assert "characters)" in str(caught.value)
