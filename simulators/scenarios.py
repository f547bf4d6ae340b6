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


async def _elder_sos(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("an elder in building 3 presses the SOS button")
    await d["elder-3-1-502"].report(event="press")
    await sleep(4)
    say("an elder in building 5 presses by mistake, then holds the button to cancel")
    await d["elder-5-2-101"].report(event="press")
    await sleep(1)
    await d["elder-5-2-101"].report(event="cancel")


async def _fire_building_3(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("smoke sensor smoke-3-1 in building 3 alarms")
    await d["smoke-3-1"].report({"battery_pct": 92}, event="alarm")
    await sleep(20)
    say("20 s later a second sensor in building 3, smoke-3-2, alarms")
    await d["smoke-3-2"].report({"battery_pct": 88}, event="alarm")


async def _manhole_theft(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("the cover of manhole-n1 is lifted: tilt 35 degrees, sustained")
    await d["manhole-n1"].report({"tilt_deg": 35.0, "installed_tilt_deg": 1.0}, event="open")
    for _ in range(5):
        await sleep(2)
        await d["manhole-n1"].report({"tilt_deg": 35.0, "installed_tilt_deg": 1.0})


async def _quiet_night(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("a quiet night: telemetry only")
    for n in range(5):
        await d["smoke-3-1"].report({"battery_pct": 92})
        await d["manhole-n1"].report({"tilt_deg": 1.0 + n * 0.1, "water_level_cm": 30 + n})
        await sleep(2)


async def _device_dies(d: Mapping[str, SimDevice], sleep: Sleep, say: Say) -> None:
    say("smoke-3-1 reports, then its battery dies")
    await d["smoke-3-1"].report({"battery_pct": 3})
    await d["smoke-3-1"].die()
    await sleep(25)  # its heartbeat in the simulated site is 10 s: offline within 20 s
    say("a new battery: smoke-3-1 reports again")
    await d["smoke-3-1"].revive()
    await d["smoke-3-1"].report({"battery_pct": 100})


SCENARIOS: Mapping[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("elder-sos", "an elder presses the SOS button; another cancels by mistake",
                 ("elder-3-1-502", "elder-5-2-101"), _elder_sos),
        Scenario("fire-building-3", "two smoke sensors in building 3 alarm 20 s apart",
                 ("smoke-3-1", "smoke-3-2"), _fire_building_3),
        Scenario("manhole-theft", "a manhole cover lifted, tilt 35 degrees sustained",
                 ("manhole-n1",), _manhole_theft),
        Scenario("quiet-night", "telemetry only", ("smoke-3-1", "manhole-n1"), _quiet_night),
        Scenario("device-dies", "a smoke sensor stops reporting, then comes back",
                 ("smoke-3-1",), _device_dies),
    )
}
