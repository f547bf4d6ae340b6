"""Named scenarios: what happens in the simulated compound, step by step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from simulators.handles import SimDevice

Sleep = Callable[[float], Awaitable[None]]
Say = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    devices: tuple[str, ...]  # device ids of the simulated site it needs
    run: Callable[[Mapping[str, SimDevice], Sleep, Say], Awaitable[None]]
    # (rule, alert key) of every alert the shipped rules raise for it; the key is the
    # device, or the place for rules keyed by place (`building-3`)
    alerts: tuple[tuple[str, str], ...] = ()


async def _elder_sos(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("an elder in building 3 presses the SOS button")
    await d["elder-3-1-502"].report(event="press")
    await sleep(4)
    say("an elder in building 5 presses by mistake, then holds the button to cancel")
    await d["elder-5-2-101"].report(event="press")
    await sleep(1)
    await d["elder-5-2-101"].report(event="cancel")


async def _fire_building_3(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("detector 1-3-017 of building 3's fire panel (floor 2, east stair) alarms; the "
        "panel's transmission device reports it over GB/T 26875.3")
    await d["smoke-3-2-017"].report(event="alarm")
    await sleep(20)
    say("20 s later detector 1-5-001 of the same panel (floor 5, lift lobby) alarms")
    await d["smoke-3-5-001"].report(event="alarm")
    await sleep(1)


async def _manhole_theft(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("the cover of manhole-e3 is lifted: tilt 35 degrees, reported through OneNET")
    await d["manhole-e3"].report({"tilt_deg": 35.0}, event="open")
    await sleep(5)
    say("still lifted: the monitor reports 35 degrees again")
    await d["manhole-e3"].report({"tilt_deg": 35.0})
    await sleep(5)


async def _fever_at_gate(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("a resident passes the south gate's face-temperature terminal with 37.8 degrees; "
        "the terminal flags it")
    await d["gate-south"].report({"body_temp_c": 37.8}, event="fever")
    await sleep(5)
    say("asked to pass again, the resident measures 37.9 degrees")
    await d["gate-south"].report({"body_temp_c": 37.9}, event="fever")
    await sleep(1)


async def _door_forced(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("the door of building 7, unit 2 is forced open; its Hikvision terminal reports it")
    await d["door-7-2"].report(event="forced_open")
    await sleep(1)


async def _quiet_night(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("a quiet night: telemetry only")
    for n in range(5):
        await d["smoke-3-1"].report({"battery_pct": 92})
        await d["manhole-n1"].report({"tilt_deg": 1.0 + n * 0.1, "water_level_cm": 30 + n})
        await sleep(2)


async def _device_dies(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("the RS-485 smoke detector smoke-3-2 stops answering")
    await d["smoke-3-2"].die()
    await sleep(10)  # polled every 2 s: offline within 4 s
    say("smoke-3-2 is repaired and answers again")
    await d["smoke-3-2"].revive()
    await sleep(6)  # retried with backoff: back within a few seconds


async def _sos_battery_dead(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("an elder in building 7 presses the wireless SOS button (a Heiman HS1EB)")
    await d["sos-7-1-301"].report({"battery_pct": 4}, event="press")
    await sleep(5)
    say("its battery dies; zigbee2mqtt gives it up and says it is offline")
    await d["sos-7-1-301"].die()
    await sleep(2)


SCENARIOS: Mapping[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("elder-sos", "an elder presses the SOS button; another cancels by mistake",
                 ("elder-3-1-502", "elder-5-2-101"), _elder_sos,
                 (("elder.sos", "elder-3-1-502"), ("elder.sos", "elder-5-2-101"))),
        Scenario("fire-building-3", "two detectors of building 3's fire panel alarm 20 s "
                 "apart, reported over GB/T 26875.3",
                 ("smoke-3-2-017", "smoke-3-5-001"), _fire_building_3,
                 (("smoke.alarm", "smoke-3-2-017"), ("smoke.alarm", "smoke-3-5-001"),
                  ("smoke.fire_confirmed", "building-3"))),
        Scenario("manhole-theft", "a manhole cover lifted, tilt 35 degrees sustained, "
                 "reported by an NB-IoT monitor through OneNET",
                 ("manhole-e3",), _manhole_theft,
                 (("manhole.open", "manhole-e3"), ("manhole.tilt", "manhole-e3"))),
        Scenario("fever-at-gate", "two passages at 37.8 and 37.9 degrees at the south gate",
                 ("gate-south",), _fever_at_gate, (("temp_gate.fever", "gate-south"),)),
        Scenario("door-forced", "a door forced open", ("door-7-2",), _door_forced,
                 (("access.forced_open", "door-7-2"),)),
        Scenario("quiet-night", "telemetry only", ("smoke-3-1", "manhole-n1"), _quiet_night),
        Scenario("device-dies", "a polled smoke detector stops answering, then comes back",
                 ("smoke-3-2",), _device_dies, (("device.offline", "smoke-3-2"),)),
        Scenario("sos-battery-dead", "a wireless SOS press, then the button's battery dies",
                 ("sos-7-1-301",), _sos_battery_dead,
                 (("elder.sos", "sos-7-1-301"), ("device.battery_level", "sos-7-1-301"),
                  ("device.offline", "sos-7-1-301"))),
    )
}
