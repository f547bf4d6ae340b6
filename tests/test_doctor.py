"""`scgw doctor` against real servers and ports: each broken item reported with its fix."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.clock_sync import MAX_ERROR_US, STATUS_BITS, TIME_ERROR, adjtimex
from gateway.ops.cli import app
from gateway.ops.doctor import ClockState, Finding, Status, diagnose, read_kernel_clock
from gateway.ops.private_servers import InfluxDB1, Mosquitto, VictoriaMetrics, free_port
from gateway.ops.store_query import export
from tests.helpers import eventually, unique_site
from tests.pki import issue, make_ca

PASSWORD = "doctor-Pa55word"
SECRET = "SCGW_DOCTOR_MQTT_PASSWORD"
ENV = {SECRET: PASSWORD}


def synchronised() -> ClockState:
    """The container's clock may be unsynchronised: healthy runs present a good one."""
    return ClockState(now=datetime.now(UTC), synchronised=True, max_error_s=0.02)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in raw.items()))
    return path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that wants a password, like a compound's."""
    server = Mosquitto(tmp_path / "mosquitto", passwords={"gateway": PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ptys() -> Iterator[list[str]]:
    """Two real serial-like character devices: pseudo-terminals."""
    pairs = [os.openpty() for _ in range(2)]
    yield [os.ttyname(follower) for _, follower in pairs]
    for pair in pairs:
        for fd in pair:
            os.close(fd)


@pytest.fixture
def healthy(tmp_path: Path, broker: Mosquitto, victoria: VictoriaMetrics,
            ptys: list[str]) -> dict[str, Any]:
    """A config for which every applicable check passes; tests break one thing in it."""
    return {
        "site": unique_site("doctor"),
        "gpio_factory": "mock",
        "broker": {"host": "127.0.0.1", "port": broker.port, "username": "gateway",
                   "password_env": SECRET},
        "store": {"url": victoria.url},
        "journal": {"path": str(tmp_path / "var" / "journal.db")},
        "buses": [{"id": "rs485", "type": "rtu", "port": ptys[0]},
                  {"id": "plc", "type": "tcp", "host": "127.0.0.1"}],
        "devices": [
            {"id": "elder-1", "kind": "elder_button", "transport": "gpio",
             "gpio": {"pin": 17}},
            {"id": "smoke-1", "kind": "smoke", "transport": "modbus",
             "profile": "modbus-smoke-detector", "modbus": {"bus": "rs485", "unit": 1}},
            {"id": "door-1", "kind": "access", "transport": "serial",
             "profile": "serial-access-controller", "serial": {"port": ptys[1]}},
        ],
    }


async def doctor(tmp_path: Path, raw: dict[str, Any], env: dict[str, str] | None = None,
                 **kwargs: Any) -> list[Finding]:
    kwargs.setdefault("clock_probe", synchronised)
    return await diagnose(write_config(tmp_path / "gateway.toml", raw),
                          env=ENV if env is None else env, **kwargs)


def only_failure(findings: list[Finding], check: str) -> Finding:
    """The one failed finding, asserting that it is the only one and of `check`."""
    failed = [f for f in findings if f.status is Status.FAIL]
    assert [f.check for f in failed] == [check], failed
    return failed[0]


def status(findings: list[Finding], check: str) -> list[Status]:
    return [f.status for f in findings if f.check == check]


async def test_a_healthy_gateway_passes_every_applicable_check(
        tmp_path: Path, healthy: dict[str, Any], victoria: VictoriaMetrics) -> None:
    findings = await doctor(tmp_path, healthy)
    assert {f.check: f.status for f in findings if f.status is not Status.OK} == {
        "gpio": Status.SKIP}, findings
    assert [f.check for f in findings] == [
        "config", "rules", "broker", "store", "serial", "serial", "gpio", "clock", "disk"]
    serial = [f.subject for f in findings if f.check == "serial"]
    assert serial == [f"{healthy['buses'][0]['port']} (bus rs485)",
                      f"{healthy['devices'][2]['serial']['port']} (device door-1)"]
    # the probe point really is in the store, under its own measurement and the site
    match = f'{{__name__="sc_doctor_probe",site="{healthy["site"]}"}}'

    async def stored() -> bool:
        return len(await asyncio.to_thread(export, victoria.url, match)) == 1

    await eventually(stored, what="the probe point in VictoriaMetrics")
    # the check looks at the journal's directory without creating it
    assert not (tmp_path / "var").exists()


async def test_a_closed_broker_port_says_start_mosquitto(tmp_path: Path,
                                                         healthy: dict[str, Any]) -> None:
    healthy["broker"]["port"] = free_port()
    failure = only_failure(await doctor(tmp_path, healthy), "broker")
    assert "connection refused" in failure.found
    assert failure.fix is not None
    assert "sudo systemctl start mosquitto" in failure.fix
    assert "broker.port" in failure.fix


async def test_a_wrong_password_names_the_secret_and_the_password_file(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    failure = only_failure(await doctor(tmp_path, healthy, env={SECRET: "wrong"}), "broker")
    assert "refused user gateway" in failure.found
    assert failure.fix is not None
    assert SECRET in failure.fix
    assert "mosquitto_passwd /etc/mosquitto/passwd gateway" in failure.fix
    assert "wrong" not in failure.found + failure.fix  # secrets are never shown


async def test_a_broker_that_never_answers_times_out(tmp_path: Path,
                                                     healthy: dict[str, Any]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks MQTT
        healthy["broker"]["port"] = silent.getsockname()[1]
        failure = only_failure(await doctor(tmp_path, healthy, timeout_s=0.5), "broker")
    assert failure.found == "no answer within 0.5 s"
    assert failure.fix is not None
    assert "network path" in failure.fix


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """The compound's CA, a broker certificate it signed, and an unrelated CA."""
    ca, _ = make_ca(tmp_path / "ca", "ca")
    other_ca, _ = make_ca(tmp_path / "other", "other")
    cert, key = issue(tmp_path / "ca", "server", "localhost", san="IP:127.0.0.1")
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca}


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto-tls", tls=(pki["ca"], pki["cert"], pki["key"]),
                       passwords={"gateway": PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("ca", ["ca", "other_ca"])
async def test_tls_needs_the_ca_that_signed_the_broker(
        tmp_path: Path, healthy: dict[str, Any], tls_broker: Mosquitto,
        pki: dict[str, Path], ca: str) -> None:
    healthy["broker"] |= {"port": tls_broker.port, "tls": {"ca_file": str(pki[ca])}}
    findings = await doctor(tmp_path, healthy)
    if ca == "ca":
        assert status(findings, "broker") == [Status.OK]
        assert not any(f.status is Status.FAIL for f in findings), findings
        return
    failure = only_failure(findings, "broker")
    assert "certificate is not trusted" in failure.found
    assert failure.fix is not None
    assert "broker.tls.ca_file" in failure.fix
    assert str(pki["other_ca"]) in failure.fix


async def test_an_unreachable_store_says_start_it(tmp_path: Path,
                                                  healthy: dict[str, Any]) -> None:
    healthy["store"]["url"] = f"http://127.0.0.1:{free_port()}"
    failure = only_failure(await doctor(tmp_path, healthy), "store")
    assert "unreachable" in failure.found
    assert failure.fix is not None
    assert "sudo systemctl start influxdb" in failure.fix
    assert "store.url" in failure.fix


async def test_an_influxdb1_without_the_database_says_create_it(
        tmp_path: Path, healthy: dict[str, Any], influxdb1: InfluxDB1) -> None:
    database = f"doctor_{healthy['site']}"
    healthy["store"] = {"api": "v1", "url": influxdb1.url, "database": database}
    failure = only_failure(await doctor(tmp_path, healthy), "store")
    assert "404" in failure.found
    assert failure.fix == f"influx -execute 'CREATE DATABASE \"{database}\"'"
    # once created, as the fix says, the same check passes and the point is there
    await asyncio.to_thread(influxdb1.create_database, database)
    findings = await doctor(tmp_path, healthy)
    assert status(findings, "store") == [Status.OK]
    result = influxdb1.query('SELECT "probe", "site" FROM "sc_doctor"', database)
    [series] = result["results"][0]["series"]
    assert [row[1:] for row in series["values"]] == [[1, healthy["site"]]]


async def test_store_credentials_that_are_refused_name_user_and_secret(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    store = InfluxDB1(tmp_path / "influxd", admin=("scgw", "store-Pa55"))
    await asyncio.to_thread(store.start, 30)
    try:
        await asyncio.to_thread(store.create_database, "scgw")
        healthy["store"] = {"api": "v1", "url": store.url, "username": "scgw",
                            "password_env": "SCGW_DOCTOR_STORE_PASSWORD"}
        wrong = await doctor(tmp_path, healthy,
                             env={**ENV, "SCGW_DOCTOR_STORE_PASSWORD": "not-it"})
        right = await doctor(tmp_path, healthy,
                             env={**ENV, "SCGW_DOCTOR_STORE_PASSWORD": "store-Pa55"})
    finally:
        await asyncio.to_thread(store.stop)
    failure = only_failure(wrong, "store")
    assert "401" in failure.found
    assert failure.fix is not None
    assert "store.username (scgw)" in failure.fix
    assert "SCGW_DOCTOR_STORE_PASSWORD" in failure.fix
    assert status(right, "store") == [Status.OK]


async def test_a_missing_serial_port_names_the_key(tmp_path: Path,
                                                   healthy: dict[str, Any]) -> None:
    missing = str(tmp_path / "ttyUSB7")
    healthy["devices"][2]["serial"]["port"] = missing
    findings = await doctor(tmp_path, healthy)
    failure = only_failure(findings, "serial")
    assert failure.subject == f"{missing} (device door-1)"
    assert failure.found == "no such device"
    assert failure.fix is not None
    assert "devices[2].serial.port" in failure.fix
    assert "/dev/serial/by-id/" in failure.fix
    assert status(findings, "serial") == [Status.OK, Status.FAIL]  # the bus's port is fine


async def test_a_port_locked_by_another_process_is_a_warning(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    port = healthy["devices"][2]["serial"]["port"]
    holder = await asyncio.create_subprocess_exec(  # takes the drivers' lock and keeps it
        sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
        port, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        findings = await doctor(tmp_path, healthy)
    finally:
        await holder.communicate(b"")
    assert not any(f.status is Status.FAIL for f in findings), findings
    [door] = [f for f in findings if f.subject == f"{port} (device door-1)"]
    assert door.status is Status.WARN
    assert door.fix is not None
    assert f"sudo fuser -v {port}" in door.fix


@pytest.mark.skipif(Path("/dev/serial0").exists(), reason="this machine has a Pi UART")
async def test_a_missing_pi_uart_says_enable_it(tmp_path: Path,
                                                healthy: dict[str, Any]) -> None:
    healthy["buses"][0]["port"] = "/dev/serial0"
    failure = only_failure(await doctor(tmp_path, healthy), "serial")
    assert failure.subject == "/dev/serial0 (bus rs485)"
    assert failure.fix is not None
    assert "raspi-config nonint do_serial_hw 0" in failure.fix


async def test_a_regular_file_is_not_a_serial_port(tmp_path: Path,
                                                   healthy: dict[str, Any]) -> None:
    (tmp_path / "notes.txt").write_text("not a port")
    healthy["buses"][0]["port"] = str(tmp_path / "notes.txt")
    failure = only_failure(await doctor(tmp_path, healthy), "serial")
    assert "not a character device" in failure.found
    assert failure.fix is not None
    assert "buses[0].port" in failure.fix


async def test_gpio_without_a_pin_library_says_install_lgpio(
        tmp_path: Path, healthy: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    healthy["gpio_factory"] = "default"
    # gpiozero's own switch: a factory that cannot be loaded here or on a Pi
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-pin-library")
    failure = only_failure(await doctor(tmp_path, healthy), "gpio")
    assert failure.subject == "pins 17"
    assert "no-such-pin-library" in failure.found
    assert failure.fix is not None
    assert "sudo apt install python3-lgpio" in failure.fix
    assert "--system-site-packages" in failure.fix
    assert 'gpio_factory = "mock"' in failure.fix


async def test_an_unsynchronised_clock_says_enable_ntp(tmp_path: Path,
                                                       healthy: dict[str, Any]) -> None:
    def drifting() -> ClockState:
        return ClockState(now=datetime.now(UTC), synchronised=False, max_error_s=16.0)

    failure = only_failure(await doctor(tmp_path, healthy, clock_probe=drifting), "clock")
    assert "not synchronised" in failure.found
    assert "for` timers" in failure.found  # why it matters
    assert failure.fix is not None
    assert "sudo timedatectl set-ntp true" in failure.fix


async def test_a_clock_that_was_never_set_fails_even_if_marked_synchronised(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    def at_boot() -> ClockState:  # a Pi without RTC, before NTP: 1970
        return ClockState(now=datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC), synchronised=True,
                          max_error_s=0)

    failure = only_failure(await doctor(tmp_path, healthy, clock_probe=at_boot), "clock")
    assert "1970-01-01" in failure.found
    assert "never been set" in failure.found


async def test_a_check_that_raises_is_reported_and_the_others_still_run(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    def no_adjtimex() -> ClockState:
        raise OSError("adjtimex(2) is Linux-only: the clock's sync state is unknown")

    findings = await doctor(tmp_path, healthy, clock_probe=no_adjtimex)
    failure = only_failure(findings, "clock")
    assert failure.found == ("the check itself failed: OSError: adjtimex(2) is Linux-only: "
                             "the clock's sync state is unknown")
    assert status(findings, "broker") == [Status.OK]


def test_the_kernel_clock_probe_reads_the_struct_the_kernel_writes() -> None:
    # what the struct's layout determines: a misplaced field reads as garbage here
    answer, timex = adjtimex()
    assert 0 <= answer <= TIME_ERROR  # TIME_OK .. TIME_ERROR
    assert timex.status & ~STATUS_BITS == 0
    assert 0 <= timex.maxerror <= MAX_ERROR_US
    assert 0 <= timex.esterror <= MAX_ERROR_US
    assert timex.modes == 0  # nothing asked, nothing set
    before = time.time()
    state = read_kernel_clock()
    # "now" is the system time, whatever adjtimex's time field says
    assert before <= state.now.timestamp() <= time.time()
    assert state.max_error_s == pytest.approx(timex.maxerror / 1e6, abs=1.0)
    assert state.kernel_time is not None
    if not state.synchronised:
        pytest.skip("the kernel says the clock is unsynchronised: it does not vouch for the "
                    "time field of adjtimex, so it cannot be compared with the system time")
    assert state.kernel_offset_s is not None
    assert abs(state.kernel_offset_s) <= state.max_error_s + 1.0


async def test_a_kernel_time_far_off_the_system_time_is_a_finding_not_the_time_shown(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    system = datetime.now(UTC).replace(microsecond=0)

    def emulated() -> ClockState:  # a sandbox kernel: its time field 200 s ahead
        return ClockState(now=system, synchronised=False, max_error_s=16.0,
                          kernel_time=system + timedelta(seconds=200))

    clock_findings = [f for f in await doctor(tmp_path, healthy, clock_probe=emulated)
                      if f.check == "clock"]
    [sync] = [f for f in clock_findings if f.subject == "system clock"]
    [disagreement] = [f for f in clock_findings if f.subject != "system clock"]
    assert sync.status is Status.FAIL
    assert "not synchronised" in sync.found
    assert system.strftime("%Y-%m-%d %H:%M:%S UTC") in sync.found
    wrong = (system + timedelta(seconds=200)).strftime("%H:%M:%S")
    assert all(wrong not in f.found for f in clock_findings)
    assert disagreement.status is Status.WARN
    assert disagreement.subject == "kernel clock (adjtimex)"
    assert "200 s ahead of the system time" in disagreement.found
    assert "16 s" in disagreement.found


async def test_a_kernel_time_within_its_maximum_error_is_no_finding(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    system = datetime.now(UTC)

    def close() -> ClockState:
        return ClockState(now=system, synchronised=True, max_error_s=0.5,
                          kernel_time=system - timedelta(seconds=1.2))

    findings = await doctor(tmp_path, healthy, clock_probe=close)
    assert [(f.subject, f.status) for f in findings if f.check == "clock"] == [
        ("system clock", Status.OK)]


async def test_a_disk_below_the_journals_floor_fails(tmp_path: Path,
                                                     healthy: dict[str, Any]) -> None:
    free_mb = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize / 2**20
    healthy["journal"] |= {"min_free_disk_mb": free_mb + 10**6, "max_mb": 10**7}
    failure = only_failure(await doctor(tmp_path, healthy), "disk")
    assert "below journal.min_free_disk_mb" in failure.found
    assert failure.fix is not None
    assert "free space" in failure.fix
    assert "journal.path" in failure.fix


async def test_a_journal_that_may_outgrow_the_disk_is_a_warning(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    free_mb = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize / 2**20
    healthy["journal"]["max_mb"] = free_mb + 10**6
    findings = await doctor(tmp_path, healthy)
    assert not any(f.status is Status.FAIL for f in findings), findings
    [disk] = [f for f in findings if f.check == "disk"]
    assert disk.status is Status.WARN
    assert disk.fix is not None
    assert "journal.max_mb" in disk.fix


async def test_a_journal_directory_that_cannot_be_created_fails(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    (tmp_path / "var").write_text("a file where the directory should be")
    healthy["journal"]["path"] = str(tmp_path / "var" / "lib" / "journal.db")
    failure = only_failure(await doctor(tmp_path, healthy), "disk")
    assert failure.found == (f"{tmp_path / 'var' / 'lib'} cannot be created: "
                             f"{tmp_path / 'var'} is not a directory")
    assert failure.fix is not None
    assert "journal.path" in failure.fix


async def test_an_invalid_config_names_key_and_device_and_skips_what_needs_it(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    healthy["devices"][0]["gpio"]["pin"] = 99
    healthy["colour"] = "blue"
    findings = await doctor(tmp_path, healthy)
    failed = [f for f in findings if f.status is Status.FAIL]
    assert {(f.check, f.subject.split(": ", 1)[1]) for f in failed} == {
        ("config", "colour"), ("config", "devices[0].gpio.pin (device elder-1)")}
    assert all(f.fix is not None and "correct" in f.fix for f in failed)
    skipped = {f.check: f.found for f in findings if f.status is Status.SKIP}
    assert skipped == dict.fromkeys(("rules", "broker", "store", "serial", "gpio", "disk"),
                                    "needs a valid configuration")
    assert status(findings, "clock") == [Status.OK]  # needs no config


async def test_a_missing_secret_fails_and_skips_only_the_broker(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    findings = await doctor(tmp_path, healthy, env={})
    failure = only_failure(findings, "environment")
    assert failure.subject == f"{SECRET} (broker.password_env)"
    assert failure.fix is not None
    assert SECRET in failure.fix
    assert [(f.status, f.found) for f in findings if f.check == "broker"] == [
        (Status.SKIP, f"broker.password_env: {SECRET} is not set")]
    assert status(findings, "store") == [Status.OK]  # the rest is still checked


def test_the_command_exits_1_and_shows_the_failing_item_with_its_fix(
        tmp_path: Path, healthy: dict[str, Any]) -> None:
    healthy["broker"]["port"] = free_port()
    config = write_config(tmp_path / "gateway.toml", healthy)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.ops.cli", "doctor", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **ENV, "COLUMNS": "400"})
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "│ broker" in line]
    assert "FAIL" in line
    assert "connection refused" in line
    assert "sudo systemctl start mosquitto" in line


def test_the_command_exits_0_when_nothing_failed_and_speaks_json(
        tmp_path: Path, healthy: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "gateway.toml", healthy)
    monkeypatch.setattr("gateway.ops.doctor.clock.read_kernel_clock", synchronised)
    monkeypatch.setenv(SECRET, PASSWORD)
    result = CliRunner().invoke(app, ["doctor", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert {f["check"]: f["status"] for f in report["findings"]}["broker"] == "ok"


def test_a_config_file_that_is_not_there_is_the_one_failure(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--config", str(tmp_path / "nope.toml"),
                                      "--json"])
    assert result.exit_code == 1
    findings = json.loads(result.output)["findings"]
    [config] = [f for f in findings if f["check"] == "config"]
    assert config["status"] == "fail"
    assert config["found"] == "cannot read: No such file or directory"
    assert "--config" in config["fix"]
    assert {f["status"] for f in findings if f["check"] != "clock"} == {"fail", "skip"}
