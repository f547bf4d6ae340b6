"""An officer resolves an alert by hand, with a reason, where its rule allows it: the
retained alert on MQTT turns resolved with the officer's name, the reason is in the
timeline; elsewhere, and without a reason, it is refused."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import msgspec
from aiohttp import ClientResponse

from gateway.console.server import CSRF_HEADER
from gateway.core.clock import ManualClock
from gateway.core.model import Alert, AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.console.rig import OFFICER, add_user, base_url, client, console_config, csrf_token, login
from tests.helpers import Watcher, eventually, running, unique_site

RULES = """
rules:
  - id: sos.by_hand
    match: {kind: elder_button, type: press}
    clear: {type: cancel, by_hand: true}
    severity: critical
    message: "SOS {device}"
  - id: sos.at_the_button
    match: {kind: elder_button, type: press}
    clear: {type: cancel}
    severity: critical
    message: "SOS {device}"
"""


async def test_an_officer_resolves_by_hand_with_a_reason(tmp_path: Path,
                                                         mosquitto: Mosquitto) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    clock = ManualClock()
    site = unique_site("res")
    config = console_config(tmp_path, site=site, broker_port=mosquitto.port,
                            store_url="http://127.0.0.1:9", rule_files=[str(rules)])
    add_user(config, OFFICER)
    base = base_url(config)
    topic = f"sc/{site}/alerts/sos.by_hand/elder-1"
    async with running(Gateway(config, clock=clock)) as gateway, \
            Watcher(mosquitto.port, topic, "office") as office, client() as session:
        await eventually(lambda: gateway.console.ready.is_set(), what="console")
        await eventually(lambda: gateway.connected, what="broker")
        elder = SimulatedElder(gateway.pin_factory, 17, clock)
        elder.down()
        clock.advance(0.3)
        elder.up()
        await eventually(lambda: len(gateway.rules.active()) == 2, what="two alerts")
        alerts = {a.rule: a for a in gateway.rules.active()}
        assert await login(session, base, OFFICER) == 303
        token = await csrf_token(session, base)
        async with session.get(base + "/api/board") as response:
            shown = {a["rule"]: a["resolvable"] for a in (await response.json())["alerts"]}
        assert shown == {"sos.by_hand": True, "sos.at_the_button": False}

        def resolve(rule: str, reason: str) -> AbstractAsyncContextManager[ClientResponse]:
            return session.post(f"{base}/api/alerts/{alerts[rule].id}/resolve",
                                json={"note": reason}, headers={CSRF_HEADER: token})

        async with resolve("sos.by_hand", "  ") as response:
            assert response.status == 400
        async with resolve("sos.at_the_button", "false press") as response:
            assert response.status == 409
            assert (await response.json())["reason"] == "not_by_hand"
        async with resolve("sos.by_hand", "false press, visited") as response:
            assert response.status == 200, await response.text()

        resolved = await office.next(lambda s: msgspec.json.decode(
            s.payload, type=Alert).state is AlertState.RESOLVED)
        alert = msgspec.json.decode(resolved.payload, type=Alert)
        assert alert.by == OFFICER
        assert alert.message.endswith(f"(resolved by {OFFICER}: false press, visited)")
        assert [a.rule for a in gateway.rules.active()] == ["sos.at_the_button"]
        assert gateway.alert_log is not None
        entries = gateway.alert_log.records[alerts["sos.by_hand"].id].entries
        assert [(e.what, e.by, e.note) for e in entries] == [
            ("firing", None, None), ("resolved", OFFICER, None),
            ("resolve_reason", OFFICER, "false press, visited")]
    assert gateway.counters.get("ack_rejected", rule="sos.at_the_button",
                                reason="not_by_hand") == 1
