"""An unacknowledged elder SOS escalates family -> duty office -> clinic over a real webhook,
on an injected clock, until an ack arrives on MQTT; the button's LED follows the state."""

from __future__ import annotations

from pathlib import Path

import msgspec

from drivers.elder_button_gpio import Indication
from gateway.core.clock import ManualClock
from gateway.core.model import Alert, AlertState
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.helpers import Watcher, elder_gpio, eventually, make_config, running, unique_site
from tests.webhook import webhook


async def test_sos_escalates_until_acknowledged(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("esc")
    async with webhook() as hook:
        contacts = tmp_path / "contacts.yaml"
        contacts.write_text(f"""
groups:
  duty_office: ["{hook.url('duty-office')}"]
  clinic: ["{hook.url('clinic')}"]
  property_manager: ["{hook.url('property-manager')}"]
  fire_warden: ["{hook.url('fire-warden')}"]
  maintenance: ["{hook.url('maintenance')}"]
devices:
  elder-1:
    family: ["{hook.url('family-of-elder-1')}"]
""")
        clock = ManualClock()
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                             devices=[elder_gpio("elder-1", pin=17, led_pin=27)],
                             contacts_file=str(contacts), shutdown_timeout_s=0.3)
        alert_topic = f"sc/{site}/alerts/elder.sos/elder-1"
        async with running(Gateway(config, clock=clock)) as gateway, Watcher(
            mosquitto.port, alert_topic, "duty-office"
        ) as office:
            await eventually(lambda: gateway.connected, what="connected")
            led = gateway.buttons["elder-1"]
            elder = SimulatedElder(gateway.pin_factory, 17, clock)
            elder.down()
            clock.advance(0.3)
            elder.up()
            pressed_at = clock.now_ms()

            firing = await office.next(lambda s: True)
            assert msgspec.json.decode(firing.payload, type=Alert).state is AlertState.FIRING
            await eventually(lambda: hook.paths() == ["family-of-elder-1"], what="family")
            await eventually(lambda: led.indication is Indication.BLINKING, what="blinking")

            clock.advance(119)  # 1 s before the duty office step: nobody else yet
            await eventually(lambda: gateway.runner.idle, what="rules idle")
            assert hook.paths() == ["family-of-elder-1"]
            clock.advance(1)  # 2 min unacknowledged
            await eventually(lambda: len(hook.received) == 2, what="duty office")
            clock.advance(180)  # 5 min unacknowledged
            await eventually(lambda: len(hook.received) == 3, what="clinic")
            assert hook.paths() == ["family-of-elder-1", "duty-office", "clinic"]
            body = hook.received[1][1]
            assert "elder-1" in body["message"]
            assert "(ref " in body["message"]

            await office.publish(f"{alert_topic}/ack", b'{"by": "duty-office"}')
            acked = await office.next(lambda s: msgspec.json.decode(
                s.payload, type=Alert).state is AlertState.ACKNOWLEDGED)
            assert msgspec.json.decode(acked.payload, type=Alert).by == "duty-office"
            await eventually(lambda: led.indication is Indication.STEADY, what="steady LED")
            assert gateway.pin_factory.pin(27).state is True

            for _ in range(4):  # the policy repeats every 10 min: not once acknowledged
                clock.advance(600)
                await eventually(lambda: gateway.runner.idle, what="rules idle")
            await eventually(lambda: gateway.notify_sink.cursor >= gateway.journal.last_seq,
                             what="notify sink idle")
            assert hook.paths() == ["family-of-elder-1", "duty-office", "clinic"]
            assert clock.now_ms() - pressed_at > 40 * 60_000
            assert gateway.counters.get("notified") == 3

            elder.down()  # the elder holds the button: cancel
            clock.advance(3.5)
            elder.up()
            await office.next(lambda s: msgspec.json.decode(
                s.payload, type=Alert).state is AlertState.RESOLVED)
            await eventually(lambda: led.indication is Indication.OFF, what="LED off")
