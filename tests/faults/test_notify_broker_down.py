"""The broker down when an SOS is escalated to an mqtt:// target and, behind it, a webhook:
the webhook is told at once, the mqtt:// target once the broker is back, each exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import msgspec

from gateway.core.model import Notify
from gateway.journal import Journal
from gateway.ops.private_servers import Mosquitto
from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.faults.oracle import Observer
from tests.helpers import eventually, make_config, running, unique_site
from tests.webhook import webhook

RULES = """
escalations:
  both_at_once:
    steps:
      - {after: 0s, notify: duty_office}
      - {after: 0s, notify: property_manager}
rules:
  - id: elder.sos
    match: {kind: elder_button, type: [press, long_press]}
    clear: {type: cancel}
    severity: critical
    message: "Elder SOS: {device}"
    escalation: both_at_once
"""


async def test_a_notification_does_not_wait_for_the_broker(
    tmp_path: Path, persistent_mosquitto: Mosquitto
) -> None:
    mosquitto = persistent_mosquitto
    site = unique_site("notify-down")
    duty_topic = f"sc/{site}/notify/duty-office"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sos.yaml").write_text(RULES)
    async with webhook() as hook:
        contacts = tmp_path / "contacts.yaml"
        contacts.write_text(f"""
groups:
  duty_office: ["mqtt://{duty_topic}"]
  property_manager: ["{hook.url('property-manager')}"]
""")
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                             rule_files=[str(rules)], contacts_file=str(contacts),
                             shutdown_timeout_s=0.5)
        # an observer outside the gateway, its session kept by the broker across the outage
        async with Observer(mosquitto.port, site, duty_topic) as office, \
                running(Gateway(config)) as gateway:
            await eventually(lambda: gateway.connected, what="connected")
            await asyncio.to_thread(mosquitto.stop)
            await eventually(lambda: not gateway.link.connected, what="the broker gone")
            await SimulatedElder(gateway.pin_factory, 17, gateway.clock).press()
            await eventually(lambda: len(hook.received) == 1, timeout=2.0,
                             what="the webhook, with the broker still down")
            assert office.messages == []
            await asyncio.to_thread(mosquitto.start)
            await eventually(lambda: gateway.notify_sink.cursor >= gateway.journal.last_seq,
                             timeout=20, what="every target done")
            await eventually(lambda: len(office.messages) >= 1, what="the duty office")
            assert gateway.counters.get("notified", group="duty_office") == 1
            assert gateway.counters.get("notified", group="property_manager") == 1
    async with Journal(config.journal.path) as journal:
        records = [e.record for e in (await journal.read_after(0, 1000)).entries]
    intents = [r for r in records if isinstance(r, Notify)]
    # the mqtt:// intent was journalled first: the webhook's did not wait behind it
    assert [n.group for n in intents] == ["duty_office", "property_manager"]
    duty, manager = intents
    at_office = Counter(msgspec.json.decode(payload, type=Notify).id
                        for _, payload in office.messages)
    at_manager = Counter(body["message"].rsplit("(ref ", 1)[-1].rstrip(")")
                         for _, body, _ in hook.received)
    assert at_office == {duty.id: 1}  # nothing lost, nothing twice
    assert at_manager == {manager.id: 1}
