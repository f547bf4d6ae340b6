"""A device that speaks binary frames on its own serial port: one owner task per port.

The port is read through pyserial-asyncio-fast. When it disappears (a USB adapter pulled,
a pty closed) the driver counts it, waits with capped backoff on the injected clock and
opens it again; the rest of the gateway keeps running.

A frame is sent once: an event the journal refuses waits in the driver's backlog, with
the later ones behind it in order, and is handed over again in the background
(`drivers.handover.Backlog`). The port is read on meanwhile: its readings and its liveness
go on, and the line's bytes do not pile up in the kernel's buffer, which drops them once
full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import serial_asyncio_fast

from drivers.handover import Backlog
from drivers.intake import Intake
from drivers.profile import Profile
from drivers.pseudonym import Pseudonymiser
from drivers.serial_frames.decode import FrameDecoder
from drivers.serial_frames.frame import Frame
from drivers.serial_frames.frame_format import SerialFormat
from drivers.serial_frames.scanner import FrameScanner, Scanned
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import SerialDevice
from gateway.core.counters import Counters

log = logging.getLogger(__name__)

# a device whose input has been clean this long has recovered: its next fault is logged again
_CLEAN_S = 60.0
# stop reading the port while this many chunks wait for the journal; resume below the low mark
_HIGH_WATER = 64
_LOW_WATER = 16


@dataclass(frozen=True, slots=True)
class _Lost:
    reason: str


class _PortReader(asyncio.Protocol):
    """Hands the port's bytes to the owner task, and tells it when the port is gone."""

    def __init__(self, chunks: asyncio.Queue[bytes | _Lost]) -> None:
        self._chunks = chunks
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._chunks.put_nowait(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._chunks.put_nowait(_Lost(str(exc) if exc else "the port was closed"))
        if not self.closed.done():
            self.closed.set_result(None)


class SerialFrameDriver:
    """Owns one serial port for as long as `run` runs; `connected` is set while it is open."""

    def __init__(
        self,
        device: SerialDevice,
        profile: Profile,
        clock: Clock,
        counters: Counters,
        pseudonymise: Pseudonymiser | None = None,
        *,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
    ) -> None:
        if not isinstance(profile.mapping, SerialFormat):
            raise ValueError(f"{device.id}: profile {profile.name} is not a serial profile")
        if profile.kind != device.kind:
            raise ValueError(f"{device.id}: profile {profile.name} is for {profile.kind} "
                             f"devices, not {device.kind}")
        self.device = device
        self._format = profile.mapping
        self._clock = clock
        self._counters = counters
        self._decoder = FrameDecoder(profile.mapping, device.kind, device.id, pseudonymise)
        self._backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self._last_reject: float | None = None
        self.connected = asyncio.Event()

    @property
    def name(self) -> str:
        return f"serial[{self.device.id}]"

    async def run(self, intake: Intake) -> None:
        async with Backlog(intake, self._clock, self._counters) as backlog:
            await self._keep_open(intake, backlog)

    async def _keep_open(self, intake: Intake, backlog: Backlog) -> None:
        outage = False
        while True:
            chunks: asyncio.Queue[bytes | _Lost] = asyncio.Queue()
            try:
                transport, reader = await self._open(chunks)
            except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
                self._counters.inc("serial_open_failed", device=self.device.id)
                if not outage:
                    log.warning("%s: cannot open %s: %s; retrying with backoff", self.device.id,
                                self.device.serial.port, exc)
                outage = True
                await self._clock.sleep(self._backoff.next_delay())
                continue
            self._counters.inc("serial_port_opened", device=self.device.id)
            log.info("%s: reading %s", self.device.id, self.device.serial.port)
            outage = False
            self._backoff.reset()
            self.connected.set()
            try:
                lost = await self._read(chunks, transport, intake, backlog)
            finally:
                self.connected.clear()
                transport.close()
                # let the transport's executor close the port before it is opened again
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await asyncio.shield(reader.closed)
            self._counters.inc("serial_port_lost", device=self.device.id)
            log.warning("%s: lost %s (%s); reopening with backoff", self.device.id,
                        self.device.serial.port, lost.reason)
            outage = True
            await self._clock.sleep(self._backoff.next_delay())

    async def _open(
        self, chunks: asyncio.Queue[bytes | _Lost]
    ) -> tuple[serial_asyncio_fast.SerialTransport, _PortReader]:
        settings = self.device.serial
        reader = _PortReader(chunks)
        # exclusive: the OS refuses a second owner of the port (flock)
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            asyncio.get_running_loop(), lambda: reader, settings.port,
            baudrate=settings.baudrate, parity=settings.parity, stopbits=settings.stopbits,
            bytesize=settings.bytesize, exclusive=True,
        )
        return transport, reader

    async def _read(self, chunks: asyncio.Queue[bytes | _Lost],
                    transport: serial_asyncio_fast.SerialTransport, intake: Intake,
                    backlog: Backlog) -> _Lost:
        scanner = FrameScanner(self._format)
        paused = False
        while True:
            item = await self._next(chunks, scanner.deadline)
            now = self._clock.monotonic()
            dropped = scanner.dropped
            if isinstance(item, _Lost):
                await self._handle(scanner.close(), intake, backlog)
                self._count_dropped(scanner.dropped - dropped)
                return item
            if item is None:
                results = scanner.expire(now)
            else:
                self._counters.inc("serial_bytes", len(item), device=self.device.id)
                results = scanner.feed(item, now)
            self._count_dropped(scanner.dropped - dropped)
            await self._handle(results, intake, backlog)
            if not paused and chunks.qsize() > _HIGH_WATER:
                transport.pause_reading()
                paused = True
            elif paused and chunks.qsize() < _LOW_WATER:
                transport.resume_reading()
                paused = False

    async def _next(self, chunks: asyncio.Queue[bytes | _Lost],
                    deadline: float | None) -> bytes | _Lost | None:
        """The next chunk, or None when `deadline` (the pending frame's) passes first."""
        if deadline is None:
            return await chunks.get()
        if not chunks.empty():
            return chunks.get_nowait()
        getter = asyncio.create_task(chunks.get(), name=f"{self.name}.read")
        timer = asyncio.create_task(
            self._clock.sleep(max(0.0, deadline - self._clock.monotonic())),
            name=f"{self.name}.frame_timeout")
        try:
            await asyncio.wait((getter, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    async def _handle(self, results: list[Scanned], intake: Intake, backlog: Backlog) -> None:
        device = self.device.id
        for result in results:
            if not isinstance(result, Frame):
                self._reject(result.reason, result.detail)
                continue
            # a frame with a valid checksum shows the device is alive, even if it is not mapped
            intake.seen(device)
            self._counters.inc("serial_frames", device=device)
            decoded = self._decoder.decode(result, self._clock.now_ms())
            for reason, detail in decoded.problems:
                self._reject(reason, detail)
            if decoded.reading is not None:
                intake.reading(decoded.reading)
            for event in decoded.events:
                await backlog.give(event)  # sent once
            if not decoded.problems and self._clean():
                self._last_reject = None
                self._counters.recovered(device)

    def _reject(self, reason: str, detail: str) -> None:
        self._last_reject = self._clock.monotonic()
        self._counters.reject(log, self.device.id, reason, detail)

    def _clean(self) -> bool:
        last = self._last_reject
        return last is not None and self._clock.monotonic() - last >= _CLEAN_S

    def _count_dropped(self, amount: int) -> None:
        if amount:
            self._counters.inc("serial_dropped_bytes", amount, device=self.device.id)
