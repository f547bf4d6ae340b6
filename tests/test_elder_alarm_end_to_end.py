"""An elder's button press through real Mosquitto and real VictoriaMetrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gateway.core.model import Alert, AlertState, Severity
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.ops.store_query import export
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.helpers import Watcher, eventually, make_config, running, unique_site


def _alert(payload: bytes) -> Alert:
    return msgspec.json.decode(payload, type=Alert)


def _press(gateway: Gateway, pin: int) -> None:
    elder = SimulatedElder(gateway.pin_factory, pin, gateway.clock)
    elder.down()
    elder.up()


async def test_press_gives_retained_firing_alert_then_ack_then_store_points(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    site = unique_site("e2e")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url)
    alert_topic = f"sc/{site}/alerts/elder.sos/elder-1"
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        _press(gateway, 17)

        # (a) a client that subscribes afterwards gets the retained alert, state firing
        await eventually(lambda: bool(gateway.rules.active()), what="alert raised")
        await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq,
                         what="alert published")
        # the press claimed the way for the readings' work, and its publication ended it
        way = gateway.right_of_way
        assert (way.held, way.claims, way.expired) == (False, 1, 0)
        async with Watcher(mosquitto.port, f"sc/{site}/gateway/status", "late-status") as late:
            status = await late.next(lambda s: True)
        assert (status.payload, status.retain) == (b"online", True)
        async with Watcher(mosquitto.port, alert_topic, "late-subscriber") as late:
            retained = await late.next(lambda s: True)
        assert retained.retain
        firing = _alert(retained.payload)
        assert firing.state is AlertState.FIRING
        assert firing.severity is Severity.CRITICAL
        assert firing.device == "elder-1"
        assert "building 3" in firing.message

        # (b) an ack message moves it to acknowledged
        async with Watcher(mosquitto.port, alert_topic, "duty-office") as office:
            await office.publish(f"{alert_topic}/ack", b'{"by": "duty-office"}')
            acked = _alert((await office.next(
                lambda s: _alert(s.payload).state is AlertState.ACKNOWLEDGED)).payload)
        assert acked.id == firing.id
        assert acked.by == "duty-office"

        # (c) both transitions are points in the store, read back over its HTTP API
        await eventually(lambda: gateway.store_sink.cursor >= gateway.journal.last_seq,
                         what="store sink caught up")
        match = f'sc_alert_state_code{{site="{site}"}}'

        async def stored() -> list[tuple[float, int]]:  # (state code, time), one series
            series = await asyncio.to_thread(export, victoria.url, match)
            assert len(series) <= 1, series
            return sorted((v, t) for s in series
                          for v, t in zip(s.values, s.timestamps, strict=True))

        async def both_stored() -> bool:
            return len(await stored()) == 2

        await eventually(both_stored, what="two alert points in VictoriaMetrics")
        assert await stored() == [(1.0, firing.ts), (2.0, acked.ts)]


async def test_alarm_raised_while_broker_is_down_is_published_after_it_returns(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("kill")
    # no store here: shutdown leaves the unsent points in the journal after its bound
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, shutdown_timeout_s=0.5)
    alert_topic = f"sc/{site}/alerts/elder.sos/elder-1"
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="first connection")
        mosquitto.kill()
        await eventually(lambda: not gateway.link.connected, what="loss noticed")

        _press(gateway, 17)
        await eventually(lambda: bool(gateway.rules.active()), what="alert raised offline")
        assert gateway.mqtt_sink.cursor < gateway.journal.last_seq  # held in the journal
        # not published: the claim on the readings' work ends by itself
        await eventually(lambda: not gateway.right_of_way.held, what="the way cleared")
        assert (gateway.right_of_way.claims, gateway.right_of_way.expired) == (1, 1)

        mosquitto.start()  # same port, no persistence: the broker forgot everything
        async with Watcher(mosquitto.port, f"sc/{site}/#", "after-restart") as watcher:
            firing = await watcher.next(
                lambda s: s.topic == alert_topic and _alert(s.payload).state is AlertState.FIRING,
                timeout=15)
            assert _alert(firing.payload).device == "elder-1"
            # resubscribed: an ack sent to the new broker reaches the gateway
            await watcher.publish(f"{alert_topic}/ack", b'{"by": "guard"}')
            acked = await watcher.next(
                lambda s: s.topic == alert_topic
                and _alert(s.payload).state is AlertState.ACKNOWLEDGED)
        assert _alert(acked.payload).by == "guard"
        assert gateway.counters.get("mqtt_disconnects") >= 1


async def test_ack_sent_while_the_gateway_restarts_is_kept_by_its_persistent_session(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = unique_site("sess")
    config = make_config(tmp_path, site=site, broker_port=mosquitto.port, shutdown_timeout_s=0.5)
    alert_topic = f"sc/{site}/alerts/elder.sos/elder-1"
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.connected, what="connected")
        _press(gateway, 17)
        await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq > 0,
                         what="alert published")
    async with Watcher(mosquitto.port, alert_topic, "office") as office:
        await office.publish(f"{alert_topic}/ack", b'{"by": "night-shift"}')
        async with running(Gateway(config)) as again:
            acked = await office.next(
                lambda s: _alert(s.payload).state is AlertState.ACKNOWLEDGED)
            assert again.counters.get("mqtt_disconnects") == 0
    assert _alert(acked.payload).by == "night-shift"
