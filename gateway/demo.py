"""`scgw demo`: a private broker and store, the gateway on simulated devices, live alerts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gateway.config import GatewayConfig, GpioDevice, load_config
from gateway.model import Alert, AlertState
from gateway.services import Mosquitto, VictoriaMetrics
from gateway.store_query import export, export_url
from gateway.supervisor import Gateway
from simulators.duty_officer import DutyOfficer
from simulators.elder_button import SimulatedElder

SITE = "demo"
ALERT_MATCH = '{__name__=~"sc_alert_state_code"}'

_STYLE = {AlertState.FIRING: "bold red", AlertState.ACKNOWLEDGED: "yellow",
          AlertState.RESOLVED: "green"}


def demo_config(workdir: Path, broker_port: int, store_url: str) -> str:
    return f"""\
# Written by `scgw demo`; `scgw run --config {workdir}/gateway.toml` runs the same gateway.
site = "{SITE}"
gpio_factory = "mock"   # simulated GPIO pins

[broker]
host = "127.0.0.1"
port = {broker_port}
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[store]
url = "{store_url}"
bucket = "scgw"
flush_interval_s = 0.5

[journal]
path = "{workdir}/journal.db"

[[devices]]
id = "elder-3-1-502"
kind = "elder_button"
transport = "gpio"
location = {{ building = "3", unit = "1", floor = 5 }}
gpio = {{ pin = 17, led_pin = 27, long_press_s = 3.0 }}

[[devices]]
id = "elder-5-2-101"
kind = "elder_button"
transport = "gpio"
location = {{ building = "5", unit = "2", floor = 1 }}
gpio = {{ pin = 22, led_pin = 23, long_press_s = 3.0 }}
"""


async def run_demo(workdir: Path, duration: float | None, console: Console) -> None:
    mosquitto = Mosquitto(workdir / "mosquitto")
    store = VictoriaMetrics(workdir / "victoria-metrics")
    try:
        console.print("[bold]Starting a private Mosquitto and VictoriaMetrics under "
                      f"{workdir}[/bold]")
        await asyncio.to_thread(mosquitto.start)
        await asyncio.to_thread(store.start)
        console.print(f"  mosquitto        mqtt://127.0.0.1:{mosquitto.port}")
        console.print(f"  victoria-metrics {store.url}")
        config_file = workdir / "gateway.toml"
        config_file.write_text(demo_config(workdir, mosquitto.port, store.url))
        await _run(load_config(config_file), mosquitto.port, store.url, duration, console)
    finally:
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(store.stop)
        console.print("[bold]Stopped everything the demo started.[/bold]")


async def _run(config: GatewayConfig, broker_port: int, store_url: str,
               duration: float | None, console: Console) -> None:
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    buttons = [d for d in config.devices if isinstance(d, GpioDevice)]
    elders = {d.id: SimulatedElder(gateway.pin_factory, d.gpio.pin, gateway.clock)
              for d in buttons}
    officer = DutyOfficer("127.0.0.1", broker_port, config.site)
    started = loop.time()

    async def watch() -> None:
        async for alert in officer.watch():
            _print_alert(console, alert, loop.time() - started)
            if alert.state is AlertState.ACKNOWLEDGED:
                await _show_points(console, store_url)

    async def scenario() -> None:
        await gateway.ready.wait()
        await asyncio.sleep(1.0)
        first, second = buttons[0].id, buttons[1].id
        console.print(f"[cyan]{_t(loop.time() - started)} elder presses the SOS button "
                      f"{first}[/cyan]")
        await elders[first].press(0.3)
        await asyncio.sleep(4.0)
        console.print(f"[cyan]{_t(loop.time() - started)} elder at {second} presses by "
                      "mistake, then holds the button 3 s to cancel[/cyan]")
        await elders[second].press(0.3)
        await asyncio.sleep(0.7)
        await elders[second].press(3.2)

    async with asyncio.TaskGroup() as group:
        run = group.create_task(gateway.run(), name="demo.gateway")
        helpers = [group.create_task(watch(), name="demo.watch"),
                   group.create_task(scenario(), name="demo.scenario")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
        for task in helpers:
            task.cancel()
        gateway.stop()
        await run
    console.print("[bold]Gateway stopped cleanly.[/bold]")


def _t(seconds: float) -> str:
    return f"[{seconds:5.1f}s]"


def _print_alert(console: Console, alert: Alert, at: float) -> None:
    by = f" by {alert.by}" if alert.by else ""
    console.print(f"{_t(at)} [{_STYLE[alert.state]}]ALERT {alert.rule} {alert.state.upper()}"
                  f"{by}[/] {alert.severity} - {alert.message}")


async def _show_points(console: Console, store_url: str) -> None:
    await asyncio.sleep(1.0)  # let the store sink's batch interval pass
    query = export_url(store_url, ALERT_MATCH)
    series = await asyncio.to_thread(export, store_url, ALERT_MATCH)
    console.print("Alert points read back from VictoriaMetrics with:")
    console.print(f"  curl '{query}'", soft_wrap=True, markup=False, highlight=False)
    table = Table("device", "state", "state_code", "timestamp (ms)")
    for s in series:
        for value, ts in zip(s.values, s.timestamps, strict=True):
            table.add_row(s.labels.get("device", ""), s.labels.get("state", ""),
                          f"{value:g}", str(ts))
    console.print(table)

