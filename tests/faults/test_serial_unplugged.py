"""A serial device unplugged (pty closed) in the middle of a burst and plugged back in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.profile import ProfileLibrary
from drivers.serial_frames.driver import SerialFrameDriver
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from simulators.serial_device import SerialDeviceSimulator
from tests.faults.burst import verdict_after
from tests.faults.oracle import Observer
from tests.helpers import eventually, make_config, running, unique_site

FRAMES = 200  # door forced open: alarm class


async def test_serial_device_unplugged_and_back(tmp_path: Path, mosquitto: Mosquitto,
                                                victoria: VictoriaMetrics) -> None:
    site = unique_site("fault-serial")
    link = tmp_path / "ttyDOOR"
    profile = ProfileLibrary().get("serial-access-controller")
    device = {"id": "door-1", "kind": "access", "transport": "serial",
              "profile": profile.name, "serial": {"port": str(link)}}
    async with SerialDeviceSimulator(profile, link) as door:
        config = make_config(tmp_path, site=site, broker_port=mosquitto.port,
                             store_url=victoria.url, devices=[device])
        async with Observer(mosquitto.port, site) as observer, running(
            Gateway(config)
        ) as gateway:
            (driver,) = [d for d in gateway.drivers if isinstance(d, SerialFrameDriver)]
            await asyncio.wait_for(driver.connected.wait(), 10)
            for n in range(FRAMES):
                if n == FRAMES // 2:
                    door.disconnect()  # the cable is pulled
                    await eventually(lambda: not driver.connected.is_set(), what="loss seen")
                    door.reconnect()  # and plugged back in, on a new pty
                    await asyncio.wait_for(driver.connected.wait(), 20)
                await door.send("door_event", {"reason": 3, "door": 1})
                await asyncio.sleep(0.002)
            await eventually(lambda: gateway.counters.get("events_accepted") == FRAMES,
                             timeout=30, what="every frame accepted")
            assert gateway.counters.get("serial_port_lost", device="door-1") >= 1
            verdict = await verdict_after(gateway, observer, victoria.url, site)
    verdict.extra["unplugged"] = 1
    verdict.print("serial device unplugged and back")
    assert verdict.accepted == FRAMES
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)
