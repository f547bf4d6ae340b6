"""A gateway restarted on the same journal resumes its alerts and the LED feedback."""

from __future__ import annotations

from pathlib import Path

from drivers.elder_button_gpio import Indication
from gateway.core.model import AlertState
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.helpers import elder_gpio, eventually, make_config, running


async def test_active_alert_and_led_survive_a_restart(tmp_path: Path) -> None:
    # no broker and no store: everything stays in the journal, nothing is lost
    config = make_config(tmp_path, site="r1", broker_port=9, shutdown_timeout_s=0.2,
                         devices=[elder_gpio("e1", pin=17, led_pin=27)])
    async with running(Gateway(config)) as gateway:
        elder = SimulatedElder(gateway.pin_factory, 17, gateway.clock)
        elder.down()
        elder.up()
        await eventually(lambda: bool(gateway.rules.active()), what="alert raised")
        await gateway.ack("elder.sos", "e1", by="duty")
        await eventually(lambda: gateway.rules.active()[0].state is AlertState.ACKNOWLEDGED,
                         what="acknowledged")
        await gateway.runner.caught_up()
        before = gateway.rules.active()
        pending = gateway.journal.last_seq
        kinds = [type(e.record).__name__ for e in
                 (await gateway.journal.read_after(0, 100)).entries]
        assert kinds.count("DeviceEvent") == 1
        assert kinds.count("AckCommand") == 1
        assert kinds.count("Alert") == 2  # firing, acknowledged

    async with running(Gateway(config)) as again:
        assert again.rules.active() == before
        await eventually(lambda: again.buttons["e1"].indication is Indication.STEADY,
                         what="LED steady after restart")
        assert again.journal.last_seq == pending
        assert await again.journal.backlog("mqtt") == pending  # still owed to the broker
