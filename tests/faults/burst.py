"""A burst of alarms from simulated GPIO buttons, and the run-to-verdict shared by scenarios."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.supervisor import Gateway
from simulators.elder_button import SimulatedElder
from tests.faults.oracle import Observer, Verdict, accepted_alarms, judge
from tests.helpers import elder_gpio, eventually, make_config, running

BUTTONS = 10
PRESSES = 100  # per button: 1,000 alarms


def burst_config(tmp_path: Path, site: str, broker_port: int, store_url: str,
                 **extra: Any) -> Any:
    return make_config(tmp_path, site=site, broker_port=broker_port, store_url=store_url,
                       devices=[elder_gpio(f"e{n}", pin=n + 2) for n in range(BUTTONS)],
                       **extra)


async def press_all(gateway: Gateway, during: Callable[[int], Awaitable[None]],
                    pause_s: float = 0.0) -> None:
    """Press every button PRESSES times; `during(n)` runs after round n (fault injection)."""
    elders = [SimulatedElder(gateway.pin_factory, n + 2, gateway.clock) for n in range(BUTTONS)]
    for press in range(PRESSES):
        for elder in elders:
            elder.down()
            elder.up()
        await during(press)
        await asyncio.sleep(pause_s)
    await eventually(lambda: gateway.counters.get("events_accepted") == BUTTONS * PRESSES,
                     what="every press accepted")


async def verdict_after(gateway: Gateway, observer: Observer, store_url: str, site: str
                        ) -> Verdict:
    """Once both sinks caught up: what the oracle finds of every accepted alarm (read
    through the running gateway's journal, which holds its file for itself)."""
    await eventually(lambda: gateway.mqtt_sink.cursor >= gateway.journal.last_seq
                     and gateway.store_sink.cursor >= gateway.journal.last_seq,
                     timeout=60, what="both sinks caught up")
    accepted = await accepted_alarms(gateway.journal)

    async def delivered() -> bool:
        verdict = await judge(accepted, observer.events, store_url, site)
        return verdict.lost_mqtt == 0 and verdict.lost_store == 0

    await eventually(delivered, timeout=15, what="every alarm on MQTT and in the store")
    return await judge(accepted, observer.events, store_url, site)


def assert_clean(verdict: Verdict) -> None:
    assert verdict.accepted == BUTTONS * PRESSES
    assert (verdict.lost_mqtt, verdict.lost_store, verdict.store_duplicates,
            verdict.order_violations) == (0, 0, 0, 0)


__all__ = ["Observer", "assert_clean", "burst_config", "press_all", "running",
           "verdict_after"]
