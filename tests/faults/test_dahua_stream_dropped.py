"""A Dahua terminal's event stream broken in the middle of an event, twice: the gateway
attaches again, and each event the terminal sent is journalled, published and stored once.

The terminal sends again, on the new stream, the event it was cut off in and the one
before (it cannot know whether that one arrived): the oracle outside the gateway counts
per event of the terminal (its door number) what reached MQTT and the store.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from drivers.dahua.client import DahuaStream
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.dahua_terminal import DahuaTerminal
from tests.faults.oracle import Observer, accepted_alarms, judge, mqtt_copies
from tests.helpers import eventually, make_config, running, unique_site

EVENTS = 30
DROPS = (9, 20)  # the stream breaks in the middle of these events


async def test_dahua_stream_dropped_mid_event(tmp_path: Path, mosquitto: Mosquitto,
                                              victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-dahua")
    async with DahuaTerminal() as terminal:
        config = make_config(
            tmp_path, site=site, broker_port=mosquitto.port, store_url=victoria.url,
            devices=[{"id": "door-dh", "kind": "access", "transport": "dahua",
                      "dahua": {"host": "127.0.0.1", "port": terminal.port,
                                "username": "admin", "password": "dahua-admin-1",
                                "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}}])
        async with Observer(mosquitto.port, site, persistent=False) as observer:
            async with running(Gateway(config)) as gateway:
                (stream,) = [d for d in gateway.drivers if isinstance(d, DahuaStream)]
                await eventually(stream.attached.is_set, what="the stream open")
                for door in range(EVENTS):
                    if door in DROPS:
                        terminal.drop_mid_event()
                    # BreakIn: a door forced open, an alarm; its Door and UTC name it
                    terminal.emit("BreakIn", data={"Door": door, "UTC": 1_790_000_000 + door})
                await eventually(lambda: gateway.counters.get("events_accepted") >= EVENTS,
                                 what="every event journalled")
                await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq
                                 and gateway.store_sink.cursor >= gateway.journal.last_seq,
                                 timeout=20, what="both sinks caught up")
                duplicates = gateway.counters.get("duplicates_dropped", device="door-dh")
                reconnects = gateway.counters.get("dahua_reconnects", device="door-dh")
            accepted = await accepted_alarms(config.journal.path)

            async def judged() -> bool:
                verdict = await judge(accepted, observer.events, victoria.url, site)
                return verdict.lost_mqtt == 0 and verdict.lost_store == 0

            await eventually(judged, timeout=15, what="every event on MQTT and in the store")
            verdict = await judge(accepted, observer.events, victoria.url, site)
    copies = mqtt_copies(accepted, observer.events)
    # per event of the terminal: how many distinct ids the gateway gave it
    ids = Counter(e.fields["door"] for e in {e.id: e for e in observer.events}.values())
    sent = set(range(EVENTS))
    lost = len(sent - set(ids))
    new_id = sum(n - 1 for n in ids.values())
    order = [e.fields["door"] for e in accepted]
    verdict.print("Dahua stream dropped mid-event")
    print(f"terminal events={EVENTS} lost={lost} duplicated(new id)={new_id} "
          f"duplicated(same id)={copies.same_id} reconnects={reconnects} "
          f"recognised again={duplicates}")
    assert terminal.attaches == len(DROPS) + 1
    assert reconnects == len(DROPS)
    assert duplicates == len(DROPS)  # the event before each break, sent again
    assert (lost, new_id, copies.same_id, copies.new_id) == (0, 0, 0, 0)
    assert order == sorted(sent)
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
