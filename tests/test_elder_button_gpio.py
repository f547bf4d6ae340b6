"""The GPIO elder button on gpiozero's MockFactory, timed by a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.elder_button_gpio import ElderButtonGpio, Indication
from gateway.core.clock import ManualClock
from gateway.core.config import GpioDevice
from gateway.core.counters import Counters
from gateway.core.model import (
    Alert,
    AlertState,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
    Severity,
)
from tests.helpers import Refusing, elder_gpio, eventually, make_config


class Collected(Refusing):
    """Intake that keeps what the driver hands over (or refuses it, see `Refusing`)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[DeviceEvent] = []
        self.arrived = asyncio.Event()

    async def event(self, event: DeviceEvent) -> None:
        self.refusing([event])
        self.events.append(event)
        self.arrived.set()

    def reading(self, reading: Reading) -> None:
        raise AssertionError("a GPIO button sends no telemetry")

    def seen(self, device: str) -> None:
        pass


# the driver, running; the pins' factory; the clock it is timed by; what it handed over
Button = tuple[ElderButtonGpio, MockFactory, ManualClock, Collected]


@pytest.fixture
async def button(tmp_path: Path) -> AsyncIterator[Button]:
    config = make_config(tmp_path, site="g", devices=[
        elder_gpio("e1", pin=17, led_pin=27, debounce_ms=50, long_press_s=3.0,
                   blink_on_s=0.01, blink_off_s=0.01)])
    device = config.devices[0]
    assert isinstance(device, GpioDevice)
    factory = MockFactory()
    clock = ManualClock()
    driver = ElderButtonGpio(device, clock, Counters(), factory)
    intake = Collected()
    task = asyncio.create_task(driver.run(intake))
    await eventually(lambda: factory.pin(17).state is True or task.done(), what="pin set up")
    await asyncio.sleep(0)
    yield driver, factory, clock, intake
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _next_event(intake: Collected, clock: ManualClock) -> DeviceEvent:
    """Let the last level settle: time moves on in small steps until the event arrives."""
    async with asyncio.timeout(5):
        while not intake.arrived.is_set():
            await asyncio.sleep(0.001)
            clock.advance(0.01)
    intake.arrived.clear()
    return intake.events[-1]


async def test_short_press_is_an_alarm(button: Button) -> None:
    _, factory, clock, intake = button
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(0.4)
    pin.drive_high()
    released_at = clock.now_ms()
    event = await _next_event(intake, clock)
    assert (event.kind, event.device, event.type, event.cls) == (
        DeviceKind.ELDER_BUTTON, "e1", "press", DeliveryClass.ALARM)
    assert event.fields == {"duration_ms": 400}
    assert event.ts == released_at  # the moment of the release, not of the settling


async def test_a_press_the_journal_refused_is_handed_over_again_until_it_is_taken(
    button: Button,
) -> None:
    """The button is the press's only source: nothing would give it again. The driver
    keeps it, and the pins, and tries again until the journal takes it; a press that
    comes meanwhile follows it."""
    driver, factory, clock, intake = button
    intake.refuse = 3
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(0.4)
    pin.drive_high()
    first = await _next_event(intake, clock)
    assert intake.refused == [first] * 3  # the same press, its time kept
    assert first.type == "press"
    assert driver._counters.get("journal_retries", device="e1") == 3
    pin.drive_low()  # the driver still runs and holds the pin: the next press is seen
    clock.advance(0.2)
    pin.drive_high()
    second = await _next_event(intake, clock)
    assert second.type == "press"
    assert second.ts > first.ts
    assert [e.type for e in intake.events] == ["press", "press"]


async def test_long_press_cancels(button: Button) -> None:
    _, factory, clock, intake = button
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(3.5)
    pin.drive_high()
    event = await _next_event(intake, clock)
    assert (event.type, event.cls) == ("cancel", DeliveryClass.EVENT)


async def test_contact_bounce_is_ignored(button: Button) -> None:
    driver, factory, clock, intake = button
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(0.005)
    pin.drive_high()  # bounce
    clock.advance(0.005)
    pin.drive_low()  # bounce
    clock.advance(0.5)
    pin.drive_high()
    event = await _next_event(intake, clock)
    assert event.type == "press"
    assert event.fields == {"duration_ms": 500}  # from the press edge that held
    assert len(intake.events) == 1
    assert driver._counters.get("gpio_bounces") == 1


async def test_a_tap_too_short_to_count_does_not_turn_the_next_press_into_a_cancel(
    button: Button,
) -> None:
    _, factory, clock, intake = button
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(0.02)  # shorter than the 50 ms debounce: noise, or a tap not meant
    pin.drive_high()
    await asyncio.sleep(0.01)
    clock.advance(600)
    pin.drive_low()
    clock.advance(0.3)
    pin.drive_high()
    event = await _next_event(intake, clock)
    assert (event.type, event.fields) == ("press", {"duration_ms": 300})
    assert len(intake.events) == 1


def _alert(state: AlertState) -> Alert:
    return Alert(id="a1", ts=1, rule="elder.sos", device="e1", kind=DeviceKind.ELDER_BUTTON,
                 state=state, severity=Severity.CRITICAL, since=1)


async def test_led_blinks_while_open_and_stays_lit_once_acknowledged(button: Button) -> None:
    driver, factory, _, _ = button
    led = factory.pin(27)
    assert led.state is False
    driver.on_alert(_alert(AlertState.FIRING))
    await eventually(lambda: driver.indication is Indication.BLINKING, what="blinking")
    # gpiozero's blink thread toggles the pin: both levels are seen
    levels: set[bool] = set()

    def toggled() -> bool:
        levels.add(bool(led.state))
        return len(levels) == 2

    await eventually(toggled, what="toggling")

    driver.on_alert(_alert(AlertState.ACKNOWLEDGED))
    await eventually(lambda: driver.indication is Indication.STEADY, what="steady")
    assert led.state is True

    driver.on_alert(_alert(AlertState.RESOLVED))
    await eventually(lambda: driver.indication is Indication.OFF, what="off")
    assert led.state is False
