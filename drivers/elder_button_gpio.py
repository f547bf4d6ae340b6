"""The one-touch elder alarm button on a GPIO pin, with an optional LED for feedback.

A short press raises the alarm; a press held for `long_press_s` cancels it. Edges are
timestamped in gpiozero's thread and handed to the event loop, where debouncing and
press classification run on the injected clock. The debounce's end is a timer of the
clock that wakes the button's task directly: the release is handed over in the turn
after the timer's, not three turns later through a sleeping task. The LED blinks while
the alarm is open and stays lit once someone acknowledged it: the elder sees that help is
coming.

The button is its press's only source: a press the journal does not take is handed over
again until it is (`drivers.handover`); the pins stay claimed meanwhile, and later edges
wait behind it in order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drivers.debounce import Debouncer, Release
from drivers.handover import hand_over
from drivers.intake import Intake
from gateway.core.clock import Clock
from gateway.core.config import GpioDevice
from gateway.core.counters import Counters
from gateway.core.kinds import make_event
from gateway.core.model import Alert, AlertState, DeviceKind

log = logging.getLogger(__name__)

PRESS = "press"
CANCEL = "cancel"


class Indication(enum.StrEnum):
    OFF = "off"
    BLINKING = "blinking"
    STEADY = "steady"


class ElderButtonGpio:
    """Owns one button pin (and LED pin) for as long as `run` runs."""

    def __init__(
        self, device: GpioDevice, clock: Clock, counters: Counters, pin_factory: Any = None
    ) -> None:
        self.device = device
        self._clock = clock
        self._counters = counters
        self._pin_factory = pin_factory
        self._edges: deque[tuple[bool, float, int]] = deque()
        self._wake: asyncio.Future[None] | None = None  # the task waits: an edge or a timer
        self._debouncer = Debouncer(device.gpio.debounce_ms / 1000)
        self._glitches_counted = 0
        self._led: Any = None  # gpiozero's LED, once run() made it
        self._wanted = Indication.OFF
        self._indication_changed = asyncio.Event()
        # every LED call runs on this one thread, in order: gpiozero's blink thread must not
        # be started and stopped from two threads at once
        self._led_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="led")
        self.indication = Indication.OFF

    @property
    def name(self) -> str:
        return f"gpio[{self.device.id}]"

    def on_alert(self, alert: Alert) -> None:
        """Local feedback for an alert transition of this button."""
        self._wanted = {
            AlertState.FIRING: Indication.BLINKING,
            AlertState.ACKNOWLEDGED: Indication.STEADY,
            AlertState.RESOLVED: Indication.OFF,
        }[alert.state]
        self._indication_changed.set()

    async def run(self, intake: Intake) -> None:
        loop = asyncio.get_running_loop()
        settings = self.device.gpio

        def edge(pressed: bool) -> None:  # gpiozero's thread: stamp now, handle on the loop
            stamp = (pressed, self._clock.monotonic(), self._clock.now_ms())
            loop.call_soon_threadsafe(self._edge, stamp)

        # gpiozero (a few MiB of memory) is loaded by a gateway that has GPIO buttons only
        from gpiozero import LED, DigitalInputDevice

        # a plain input: gpiozero's Button would run a hold-timer thread per button
        button = DigitalInputDevice(settings.pin, pull_up=settings.pull_up, bounce_time=None,
                                    pin_factory=self._pin_factory)
        button.when_activated = lambda: edge(True)
        button.when_deactivated = lambda: edge(False)
        try:
            if settings.led_pin is not None:
                self._led = LED(settings.led_pin, pin_factory=self._pin_factory)
            log.info("elder button %s on GPIO %d ready", self.device.id, settings.pin)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feedback(), name=f"{self.name}.led")
                while True:
                    stamped = await self._next_edge()
                    if stamped is None:  # quiet long enough: what was pending has settled
                        deadline = self._debouncer.deadline
                        assert deadline is not None
                        await self._report(intake, self._debouncer.settle(deadline))
                        continue
                    pressed, mono, ts = stamped
                    await self._report(intake, self._debouncer.settle(mono))
                    self._debouncer.edge(pressed, mono, ts)
        finally:
            # pins go back to the factory whatever ended the task, so a restart can claim them
            button.close()
            if self._led is not None:
                led, self._led = self._led, None
                # on the LED's own thread: after any change still running there
                await loop.run_in_executor(self._led_thread, led.close)

    def _edge(self, stamped: tuple[bool, float, int]) -> None:
        self._edges.append(stamped)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _next_edge(self) -> tuple[bool, float, int] | None:
        """The next edge, or None once a pending change has held still long enough."""
        while not self._edges:
            deadline = self._debouncer.deadline
            timer = None
            if deadline is not None:
                wait = deadline - self._clock.monotonic()
                if wait <= 0:
                    return None
                timer = self._clock.call_later(wait, self._poke)
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None
                if timer is not None:
                    timer.cancel()
            if not self._edges and deadline is not None:
                return None  # the timer: held still until the deadline
        return self._edges.popleft()

    async def _report(self, intake: Intake, release: Release | None) -> None:
        glitches = self._debouncer.glitches - self._glitches_counted
        if glitches:
            self._counters.inc("gpio_bounces", glitches, device=self.device.id)
            self._glitches_counted += glitches
        if release is None:
            return
        event_type = CANCEL if release.held_s >= self.device.gpio.long_press_s else PRESS
        await hand_over(intake, make_event(
            DeviceKind.ELDER_BUTTON, self.device.id, event_type, release.ts,
            {"duration_ms": round(release.held_s * 1000)}), self._clock, self._counters)

    async def _feedback(self) -> None:
        while True:
            await self._indication_changed.wait()
            self._indication_changed.clear()
            wanted = self._wanted
            if self._led is not None and wanted is not self.indication:
                # stopping a blink joins gpiozero's blink thread: keep that off the loop
                await asyncio.get_running_loop().run_in_executor(
                    self._led_thread, self._apply, self._led, wanted)
            self.indication = wanted

    def _apply(self, led: Any, wanted: Indication) -> None:
        settings = self.device.gpio
        if wanted is Indication.BLINKING:
            led.blink(on_time=settings.blink_on_s, off_time=settings.blink_off_s)
        elif wanted is Indication.STEADY:
            led.on()
        else:
            led.off()
