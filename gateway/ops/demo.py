"""`scgw demo` and `scgw simulate`: private servers, the gateway, a simulated compound."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from pathlib import Path

import aiomqtt
import msgspec
from rich.console import Console
from rich.table import Table

from gateway.config_file import load_config
from gateway.console.accounts import Accounts, Role, users_path
from gateway.core.config import GatewayConfig
from gateway.core.model import Alert, AlertState, DeviceEvent, Notify
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.ops.store_query import Series, export, export_url
from gateway.sinks.points import ALERT_STATE_CODE
from gateway.supervisor import Gateway
from simulators.duty_officer import ConsoleLogin, DutyOfficer
from simulators.scenarios import SCENARIOS
from simulators.site import SITE, SimulatedSite

INTAKE_WAIT_S = 10.0  # for the broker, the HTTP receiver and the serial ports
ALERT_MATCH = '{__name__=~"sc_alert_state_code"}'
_STATE_OF_CODE = {code: state for state, code in ALERT_STATE_CODE.items()}
DEMO_USER = "demo"  # the console's login for whoever watches the demo
OFFICER_USER = "duty-office"  # the simulated duty officer's, who acknowledges on the console

_STYLE = {AlertState.FIRING: "bold red", AlertState.ACKNOWLEDGED: "yellow",
          AlertState.RESOLVED: "green"}


async def run_site(workdir: Path, scenarios: list[str], duration: float | None,
                   console: Console, *, officer: bool, stay: bool) -> None:
    """Start Mosquitto and VictoriaMetrics under `workdir`, the gateway, and the scenarios.

    With `stay`, keep running after the scenarios until Ctrl-C (or `duration`). Every run
    starts with an empty journal: alerts left open by a previous run are not restored.
    """
    await asyncio.to_thread(_forget_journal, workdir)
    mosquitto = Mosquitto(workdir / "mosquitto")
    store = VictoriaMetrics(workdir / "victoria-metrics")
    try:
        console.print("[bold]Starting a private Mosquitto and VictoriaMetrics under "
                      f"{workdir}[/bold]")
        await asyncio.to_thread(mosquitto.start)
        await asyncio.to_thread(store.start)
        console.print(f"  mosquitto        mqtt://127.0.0.1:{mosquitto.port}")
        console.print(f"  victoria-metrics {store.url}")
        async with SimulatedSite(workdir) as site:
            config_file = workdir / "gateway.toml"
            config_file.write_text(site.config(mosquitto.port, store.url))
            config = await asyncio.to_thread(load_config, config_file)
            login, shown = await _console_logins(config)
            await _run(config, site, store.url, scenarios, duration, console,
                       login if officer else None, stay, shown)
    finally:
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(store.stop)
        console.print("[bold]Stopped everything the demo started.[/bold]")


async def _console_logins(config: GatewayConfig) -> tuple[ConsoleLogin, str]:
    """A login for the person watching the demo, and one for the simulated duty officer;
    the demo's alone, made afresh at every start. Returns the officer's, and the line that
    shows the console's address and the person's random password (printed once)."""
    assert config.console is not None
    url = f"http://{config.console.host}:{config.console.port}"
    accounts = Accounts(users_path(config))
    password, officer = secrets.token_urlsafe(12), secrets.token_urlsafe(16)
    await asyncio.to_thread(accounts.add, DEMO_USER, Role.OFFICER, password)
    await asyncio.to_thread(accounts.add, OFFICER_USER, Role.OFFICER, officer)
    shown = (f"  console          {url}/  login {DEMO_USER}, password {password} "
             "(made for this demo; shown once)")
    return ConsoleLogin(url, OFFICER_USER, officer), shown


async def _run(config: GatewayConfig, site: SimulatedSite, store_url: str,
               scenarios: list[str], duration: float | None, console: Console,
               officer: ConsoleLogin | None, stay: bool, login_line: str) -> None:
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = loop.time()

    def say(text: str) -> None:
        console.print(f"[cyan]{_t(loop.time() - started)} {text}[/cyan]")

    async def watch() -> None:
        async for alert in DutyOfficer("127.0.0.1", config.broker.port, config.site,
                                       name=OFFICER_USER,
                                       ack_after_s=2.0 if officer else None,
                                       console=officer).watch():
            _print_alert(console, alert, loop.time() - started)
            if alert.state is AlertState.ACKNOWLEDGED:
                await _show_points(console, store_url, alert)

    async def play() -> None:
        await gateway.ready.wait()
        if gateway.console is not None:
            await gateway.console.ready.wait()  # the address works once it is shown
            console.print(login_line, markup=False, highlight=False, soft_wrap=True)
        try:
            async with asyncio.timeout(INTAKE_WAIT_S):
                await gateway.intake_open()
        except TimeoutError:
            say(f"the gateway is not reachable by every device after {INTAKE_WAIT_S:g} s; "
                "starting the devices anyway")
        # the devices start now: each that reports on its own checks in at once
        devices = await site.attach(config, gateway.pin_factory, gateway.clock)
        await asyncio.sleep(1.0)
        for name in scenarios:
            say(f"scenario {name}: {SCENARIOS[name].summary}")
            await SCENARIOS[name].run(devices, asyncio.sleep, say)
        if duration is None and not stay:
            await asyncio.sleep(3.0)  # let the last alerts arrive
            stop.set()
        else:
            await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        run = group.create_task(gateway.run(), name="demo.gateway")
        helpers = [group.create_task(watch(), name="demo.watch"),
                   group.create_task(_events(config, console, loop.time, started),
                                     name="demo.events"),
                   group.create_task(play(), name="demo.scenarios")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
        for task in helpers:
            task.cancel()
        gateway.stop()
        await run
    console.print("[bold]Gateway stopped cleanly.[/bold]")


async def _events(config: GatewayConfig, console: Console, now: object, started: float
                  ) -> None:
    """Print device events and status changes as they appear on MQTT."""
    assert callable(now)
    async with aiomqtt.Client("127.0.0.1", config.broker.port, identifier="demo-events") as c:
        await c.subscribe(f"sc/{config.site}/+/+/event", qos=1)
        await c.subscribe(f"sc/{config.site}/+/+/status", qos=1)
        await c.subscribe(f"sc/{config.site}/notify/#", qos=1)
        async for message in c.messages:
            at = _t(float(now()) - started)
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if "/notify/" in topic:
                note = msgspec.json.decode(payload, type=Notify)
                when = "resolved" if note.reason == "resolved" else f"step {note.step}"
                console.print(f"{at} NOTIFY {topic.rsplit('/', 1)[1]} ({when}): "
                              f"{note.message}", style="blue")
                continue
            if topic.endswith("/status"):
                console.print(f"{at} device {topic.split('/')[3]} is {payload.decode()}",
                              style="dim")
                continue
            event = msgspec.json.decode(payload, type=DeviceEvent)
            style = "magenta" if event.cls == "alarm" else "dim"
            console.print(f"{at} event {event.type} ({event.cls}) from {event.device}",
                          style=style)


def _forget_journal(workdir: Path) -> None:
    for old in [*workdir.glob("journal.db*"), *workdir.glob("console-users.json*")]:
        old.unlink()


def _t(seconds: float) -> str:
    return f"[{seconds:5.1f}s]"


def _print_alert(console: Console, alert: Alert, at: float) -> None:
    by = f" by {alert.by}" if alert.by else ""
    console.print(f"{_t(at)} [{_STYLE[alert.state]}]ALERT {alert.rule} {alert.state.upper()}"
                  f"{by}[/] {alert.severity} - {alert.message}")


async def _show_points(console: Console, store_url: str, alert: Alert) -> None:
    query = export_url(store_url, ALERT_MATCH)
    series: list[Series] = []
    for _ in range(50):  # until the store has the acknowledgement's point (about 1 s)
        series = await asyncio.to_thread(export, store_url, ALERT_MATCH)
        if any(s.labels.get("device") == alert.device and alert.ts in s.timestamps
               for s in series):  # the acknowledgement's point: stamped with its time
            break
        await asyncio.sleep(0.1)
    console.print("Alert points read back from VictoriaMetrics with:")
    console.print(f"  curl '{query}'", soft_wrap=True, markup=False, highlight=False)
    table = Table("device", "state", "state_code", "timestamp (ms)")
    for s in series:
        for value, ts in zip(s.values, s.timestamps, strict=True):
            state = _STATE_OF_CODE.get(int(value))
            table.add_row(s.labels.get("device", ""), state.value if state else "?",
                          f"{value:g}", str(ts))
    console.print(table)


__all__ = ["SITE", "run_site"]
