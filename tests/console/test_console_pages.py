"""The devices page's data (offline first) and the shift handover (page data and
`scgw report shift`), from a running gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from gateway.console.server import CSRF_HEADER
from gateway.core.clock import ManualClock
from gateway.ops.cli import app
from gateway.ops.private_servers import Mosquitto, free_port
from gateway.status import Status
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.console.rig import OFFICER, add_user, base_url, client, csrf_token, login
from tests.helpers import (
    Watcher,
    elder_gpio,
    eventually,
    intake_open,
    make_config,
    running,
    sos_mqtt,
    unique_site,
)


async def test_devices_offline_first(tmp_path: Path, mosquitto: Mosquitto) -> None:
    clock = ManualClock()
    site = unique_site("dev")
    rules = tmp_path / "rules.yaml"  # no rule on going offline: no alert pushes the board
    rules.write_text("rules:\n  - id: sos\n    match: {kind: elder_button, type: press}\n"
                     "    clear: {type: cancel}\n    message: SOS\n")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, rule_files=[str(rules)],
                         devices=[elder_gpio("elder-1", pin=17),
                                  sos_mqtt("button-9", f"z2m/{site}/button-9", heartbeat_s=60)],
                         console={"port": free_port()}, shutdown_timeout_s=0.3)
    add_user(config, OFFICER)
    async with running(Gateway(config, clock=clock)) as gateway:
        await eventually(lambda: gateway.console.ready.is_set(), what="console")
        base = base_url(config)
        async with Watcher(mosquitto.port, "unused/#", "button") as button:
            await intake_open(gateway)
            await button.publish(f"z2m/{site}/button-9", b'{"battery": 87}')
            await eventually(lambda: gateway.batteries == {"button-9": 87}, what="battery")
        async with client() as session:
            assert await login(session, base, OFFICER) == 303
            async with session.get(base + "/api/stream") as stream:
                await stream.content.readuntil(b"event: board")  # at once
                clock.advance(120)  # two heartbeats of silence: the wireless button is offline
                # the change is pushed: the devices page reads them again
                async with asyncio.timeout(5):
                    await stream.content.readuntil(b"event: board")
            assert gateway.board.get("button-9") is Status.OFFLINE
            async with session.get(base + "/api/devices") as response:
                rows = (await response.json())["devices"]
    assert [(r["id"], r["status"]) for r in rows] == [("button-9", "offline"),
                                                      ("elder-1", "online")]
    assert rows[1]["kind"] == "elder_button"
    assert rows[1]["place"] == {"building": "3", "unit": "1", "floor": 5}
    assert rows[0]["rejected"] == 0
    assert (rows[0]["battery"], rows[1]["battery"]) == (87, None)


async def test_shift_handover_on_the_page_and_the_command_line(tmp_path: Path,
                                                                mosquitto: Mosquitto) -> None:
    site = unique_site("shift")
    port = free_port()
    file = tmp_path / "gateway.toml"
    file.write_text(f"""site = "{site}"
gpio_factory = "mock"
shutdown_timeout_s = 0.3
[broker]
port = {mosquitto.port}
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
[console]
port = {port}
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
location = {{ building = "3", unit = "1", floor = 5 }}
gpio = {{ pin = 17, debounce_ms = 0 }}
""")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                         devices=[elder_gpio("elder-1", pin=17)], console={"port": port},
                         shutdown_timeout_s=0.3)
    add_user(config, OFFICER)
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.console.ready.is_set(), what="console")
        await SimulatedElder(gateway.pin_factory, 17, gateway.clock).press()
        await eventually(lambda: len(gateway.rules.active()) == 1, what="the SOS")
        alert = gateway.rules.active()[0]
        base = base_url(config)
        async with client() as session:
            assert await login(session, base, OFFICER) == 303
            token = await csrf_token(session, base)
            async with session.post(f"{base}/api/alerts/{alert.id}/ack",
                                    json={"note": "on my way"},
                                    headers={CSRF_HEADER: token}) as response:
                assert response.status == 200
            async with session.get(base + "/api/shift?hours=12") as response:
                shift = await response.json()
            async with session.get(base + "/api/shift?hours=0") as response:
                assert response.status == 400
        alert_log = gateway.alert_log
        assert alert_log is not None
        await eventually(lambda: alert_log.saved, what="timelines written")
        # the report asks the running gateway, which answers on this loop: from a thread
        result = await asyncio.to_thread(CliRunner(env={"COLUMNS": "200"}).invoke,
                                         app, ["report", "shift", "--since", "12h", "-c",
                                               str(file)])
    [row] = shift["alerts"]
    assert (row["rule"], row["state"], row["by"], row["notes"]) == (
        "elder.sos", "acknowledged", OFFICER, ["on my way"])
    assert 0 <= row["ack_ms"] < 10_000
    assert shift["median_ack_ms"] == {"critical": row["ack_ms"]}
    assert result.exit_code == 0, result.output
    assert "1 alert(s), 1 still open" in result.output
    assert "elder.sos" in result.output
    assert OFFICER in result.output
    assert "on my way" in result.output
    assert "median time to acknowledge, critical" in result.output
    # who was at the console during the shift, from the journal
    assert [(e["what"], e["user"], e["role"]) for e in shift["access"]] == [
        ("login", OFFICER, "officer")]
    assert "Console logins" in result.output
    assert "logged in" in result.output
