"""Configuration validation: every problem reported with its key path and device."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config_file import load_config
from gateway.core.operator_files import toml_brackets_deeper_than
from gateway.core.problems import ConfigError

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


def test_push_port_limits_are_checked(tmp_path: Path) -> None:
    text = GOOD.replace("[store]", "[http]\nmax_connections = 8\n"
                        "max_connections_per_address = 9\nheader_timeout_s = 0\n[store]")
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    # two independent problems, both reported in one run
    assert sorted(p.path for p in caught.value.problems) == [
        "http.header_timeout_s", "http.max_connections_per_address"]
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text.replace("header_timeout_s = 0", "")))
    (problem,) = caught.value.problems
    assert (problem.path, problem.message) == ("http.max_connections_per_address",
                                               "must be <= http.max_connections")


def test_push_port_tls_and_signing_are_checked(tmp_path: Path) -> None:
    (tmp_path / "push.crt").write_text("certificate")
    text = GOOD.replace("[store]", "[http]\nreplay_window_s = 5\n[http.tls]\n"
                        "cert_file = \"push.crt\"\nca_file = \"devices-ca.crt\"\n[store]")
    text += ('[[devices]]\nid = "gate-1"\nkind = "temp_gate"\ntransport = "http"\n'
             'profile = "http-temp-gate"\n'
             'http = { token = "gate-token-0123456789", auth = "hmac" }\n')
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    problems = {p.path: p for p in caught.value.problems}
    assert sorted(problems) == ["devices[2].http.auth", "http.replay_window_s",
                                "http.tls.key_file"]
    assert problems["devices[2].http.auth"].device == "gate-1"
    assert "required" in problems["http.tls.key_file"].message.lower()
    (tmp_path / "push.key").write_text("key")
    fixed = (text.replace("replay_window_s = 5", "replay_window_s = 60")
             .replace('cert_file = "push.crt"', 'cert_file = "push.crt"\nkey_file = "push.key"')
             .replace('auth = "hmac"', 'auth = "signed"'))
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, fixed))
    (problem,) = caught.value.problems
    assert (problem.path, problem.message) == ("http.tls.ca_file",
                                               "no such file: devices-ca.crt")
    # the files are found beside the configuration file, wherever it is loaded from
    (tmp_path / "devices-ca.crt").write_text("ca")
    config = load_config(_write(tmp_path, fixed))
    assert config.http is not None
    assert config.http.tls is not None
    assert config.http.tls.cert_file == tmp_path / "push.crt"
    assert config.http.tls.ca_file == tmp_path / "devices-ca.crt"
    assert config.http.replay_window_s == 60


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


@pytest.mark.parametrize(("text", "message"), [
    ('site = "c1"\nx = ' + "[" * 5000 + "]" * 5000 + "\n", "nest deeper than 32 levels"),
    ('site = "c1"\nx = ' + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "nest deeper than 32"),
    ('site = "c1"\n' + "a." * 3000 + "b = 1\n", "nest deeper than 32 levels"),
    ('site = "c1"\nx = ' + "1" * 5000 + "\n", "a value cannot be read: Exceeds the limit"),
    ('site = "c1"\n' + "#" * (1 << 20) + "\n", "larger than 1024 KiB: not read"),
])
def test_a_config_beyond_the_operator_file_limits_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    (problem,) = caught.value.problems
    assert message in problem.message


def test_deep_brackets_are_refused_before_the_parser_recurses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(text: str) -> dict[str, object]:
        raise AssertionError("tomllib was asked to parse it")

    monkeypatch.setattr(tomllib, "loads", never)  # the module gateway.core.problems parses with
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, 'site = "c1"\nx = ' + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nest deeper than 32 levels" in caught.value.problems[0].message


@pytest.mark.parametrize(("text", "deep"), [
    ('x = [[[1]]]\n', False),
    ('x = "' + "[" * 100 + '"\n', False),  # in a string
    ("x = '" + "{" * 100 + "'\n", False),  # in a literal string
    ('x = """\n' + "[" * 100 + '\n"""\n', False),  # in a multi-line string
    ('x = "\\"' + "[" * 100 + '"\n', False),  # after an escaped quote, still in it
    ("# " + "[" * 100 + "\nx = 1\n", False),  # in a comment
    ("[[a.b]]\nx = " + "[" * 35 + "]" * 35 + "\n", True),
    ("x = " + "[" * 34 + "]" * 34 + "\n", False),
    ("x = " + "{a = " * 35 + "1" + "}" * 35 + "\n", True),
])
def test_bracket_depth_is_counted_outside_strings_and_comments(text: str, deep: bool) -> None:
    assert toml_brackets_deeper_than(text, 34) is deep


def test_a_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(b'site = "c1"\n[store]\nurl = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        "<file>: not UTF-8 text on line 3 (byte 27: invalid start byte)"]


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
    return subprocess.run([sys.executable, "-m", "gateway.ops.cli", *args], capture_output=True,
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


# structural problems (an unknown key, a value out of range, a missing table, a broken
# device) beside cross-field ones (a pin used twice, an unknown profile, an unset variable)
MIXED = """
site = "c1"
colour = "blue"
pseudonym_key_env = "SCGW_TEST_UNSET_KEY"
[broker]
port = 70000
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 99 }
[[devices]]
id = "elder-2"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 17 }
[[devices]]
id = "elder-3"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 17 }
[[devices]]
id = "smoke-7"
kind = "smoke"
transport = "mqtt"
profile = "no-such-profile"
mqtt = { topic = "a/b" }
"""


def test_structural_and_cross_field_problems_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, MIXED), env={})
    problems = {(p.path, p.device) for p in caught.value.problems}
    assert problems == {
        ("colour", None),
        ("broker.port", None),
        ("store", None),
        ("devices[0].gpio.pin", "elder-1"),
        # the devices after the broken one keep their place in the file
        ("devices[2].gpio.pin", "elder-3"),
        ("devices[3].profile", "smoke-7"),
        ("pseudonym_key_env", None),
    }


def test_check_config_lists_config_and_rule_problems_in_one_run(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "rules:\n  - id: smoke.x\n    match: {kind: smoke, type: alarm}\n"
        "    clear: {latch: true}\n    severity: urgent\n    message: smoke\n")
    result = _scgw("check-config", str(_write(tmp_path, 'rule_files = ["rules"]\n' + MIXED)))
    assert result.returncode == 2
    assert "7 problem(s)" in result.stderr
    assert "devices[3].profile (device smoke-7): no profile 'no-such-profile'" in result.stderr
    assert "1 problem(s) in the rules" in result.stderr
    assert "severity: 'urgent' is not one of" in result.stderr


SECRETS_NAMED = """
site = "c1"
pseudonym_key_env = "SCGW_TEST_UNSET_KEY"
[broker]
password_env = "SCGW_TEST_UNSET_BROKER_PASSWORD"
[store]
url = "http://127.0.0.1:8428"
token_env = "SCGW_TEST_UNSET_TOKEN"
"""


@pytest.mark.parametrize("command", [("status",), ("alerts", "list"), ("rules", "reload")])
def test_read_only_commands_do_not_need_the_secrets(tmp_path: Path,
                                                    command: tuple[str, ...]) -> None:
    config = _write(tmp_path, SECRETS_NAMED)
    result = _scgw(*command, "--config", str(config))
    # past the configuration, to the missing status of a gateway that is not running
    assert result.returncode == 1, result.stderr
    assert "no status at" in result.stderr
    assert "not set" not in result.stderr


@pytest.mark.parametrize("command", [("check-config",), ("run", "--config")])
def test_the_commands_that_use_the_secrets_need_them(tmp_path: Path,
                                                     command: tuple[str, ...]) -> None:
    result = _scgw(*command, str(_write(tmp_path, SECRETS_NAMED)))
    assert result.returncode == 2
    for variable in ("SCGW_TEST_UNSET_KEY", "SCGW_TEST_UNSET_BROKER_PASSWORD",
                     "SCGW_TEST_UNSET_TOKEN"):
        assert f"environment variable {variable} is not set" in result.stderr


def test_alerts_ack_needs_only_the_broker_password(tmp_path: Path) -> None:
    config = _write(tmp_path, SECRETS_NAMED)
    result = _scgw("alerts", "ack", "elder.sos", "elder-1", "--by", "x", "--config", str(config))
    assert result.returncode == 2
    assert "1 problem(s)" in result.stderr
    assert "broker.password_env: environment variable SCGW_TEST_UNSET_BROKER_PASSWORD" in (
        result.stderr)


def test_a_value_left_out_for_a_structural_problem_raises_no_cross_field_problem(
        tmp_path: Path) -> None:
    text = """
site = "c1"
[broker]
reconnect_min_s = 100
reconnect_max_s = 0.2
[store]
api = "V1"
url = "http://127.0.0.1:8086"
username = "scgw"
password_env = "SCGW_TEST_STORE_PW"
[[buses]]
id = "rs485-1"
type = "rtu"
port = "/dev/ttyUSB0"
baudrate = 7
[[devices]]
id = "smoke-1"
kind = "smoke"
transport = "modbus"
profile = "modbus-smoke-detector"
modbus = { bus = "rs485-1", unit = 1 }
"""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), env={"SCGW_TEST_STORE_PW": "pw"})
    # not: reconnect_max_s below the default minimum, v1 credentials on the default v2 API,
    # or a device on a bus that is not there
    assert [p.path for p in caught.value.problems] == [
        "broker.reconnect_min_s", "store.api", "buses[0].baudrate"]
def test_a_huge_value_is_cut_short_in_the_printed_problem(tmp_path: Path) -> None:
    huge = "x" * 1_000_000
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, GOOD.replace('single = "press"', f'single = "{huge}"')))
    assert len(str(caught.value)) < 1_000
    assert "characters)" in str(caught.value)
