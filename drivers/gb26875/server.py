"""The TCP port GB/T 26875.3 transmission devices connect to, as to a monitoring centre
(and a UDP port with `udp_port`: each datagram whole frames, answered to its sender).

Every frame is answered, as the standard wants: a send frame (fire alarms, states) is
confirmed only once what it reported is journalled; a retransmission of it (the same
device, serial number and content, within `redelivery_window_s`: the device did not get
the confirm) is confirmed without being journalled again. A frame that fails its checksum,
a unit that does not fit its type, a frame from an address no transmission device has, and
a command the gateway does not take are denied; bytes outside frames are dropped, and all
of it is counted. A unit type this codec does not know is counted and confirmed: the frame
itself is well formed. A send frame without application data is the device's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Final, cast

from drivers.gb26875.frame import Command, Frame, TimeTag
from drivers.gb26875.objects import UnitError
from drivers.gb26875.panel_map import ComponentKey, PanelMap, Place, component_key
from drivers.gb26875.stream import FrameStream, Rejected
from drivers.gb26875.units import Unit, decode_unit
from drivers.intake import MessageIntake
from gateway.core.clock import Clock
from gateway.core.config import Gb26875Device, Gb26875ServerConfig
from gateway.core.counters import UNKNOWN, Counters
from gateway.core.journaling import Receipt, ReceiptBook

log = logging.getLogger(__name__)

RECEIPT_PREFIX: Final = "gb26875:"  # receipt keys: device address and serial number
_READ_BYTES: Final = 4096
_NO_RECEIPT: Final = Receipt("", b"", 0)
_DATAGRAM_BACKLOG: Final = 256  # datagrams waiting for the journal; beyond, dropped

Send = Callable[[bytes], Awaitable[None]]


class _Datagrams(asyncio.DatagramProtocol):
    """Datagrams in a bounded queue: one that finds it full is dropped and counted (its
    device gets no confirm and sends it again)."""

    def __init__(self, counters: Counters) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue(
            _DATAGRAM_BACKLOG)
        self._counters = counters
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (not a DatagramTransport subclass on 3.11)
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.queue.full():
            self._counters.inc("gb26875_datagrams_dropped")
            return
        self.queue.put_nowait((data, addr))

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, to)


class Gb26875Server:
    """Serves every configured transmission device on one port; `ready` is set while it
    listens, `port` is the port it listens on."""

    def __init__(
        self,
        server: Gb26875ServerConfig,
        devices: Sequence[Gb26875Device],
        clock: Clock,
        counters: Counters,
        receipts: ReceiptBook | None = None,
    ) -> None:
        self._server = server
        self._clock = clock
        self._counters = counters
        self._receipts = receipts
        self._window_ms = round(server.redelivery_window_s * 1000)
        places: dict[str, dict[ComponentKey, Place]] = {
            d.id: {} for d in devices if d.gb26875.address is not None}
        for device in devices:
            settings = device.gb26875
            if settings.via is None or settings.component is None:
                continue
            if settings.via not in places:
                raise ValueError(f"{device.id}: no transmission device {settings.via!r}")
            places[settings.via][component_key(settings.component)] = Place(
                device.id, device.location.building, device.location.floor, settings.zone)
        # by the transmission device's address
        self.panels: dict[int, PanelMap] = {
            d.gb26875.address: PanelMap(d.id, places[d.id])
            for d in devices if d.gb26875.address is not None}
        self._intake: MessageIntake | None = None
        self._connections = 0
        self._conversations: set[asyncio.Task[None]] = set()
        self.port = server.port
        self.udp_port = server.udp_port
        self.ready = asyncio.Event()

    @property
    def name(self) -> str:
        return "gb26875"

    async def run(self, intake: MessageIntake) -> None:
        self._intake = intake
        listener = await asyncio.start_server(self._accept, self._server.host,
                                              self._server.port)
        udp: asyncio.DatagramTransport | None = None
        try:
            self.port = listener.sockets[0].getsockname()[1]
            datagrams = _Datagrams(self._counters)
            if self._server.udp_port is not None:
                udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: datagrams, local_addr=(self._server.host, self._server.udp_port))
                self.udp_port = udp.get_extra_info("sockname")[1]
            log.info("GB/T 26875.3 receiver on %s:%d (TCP%s) for %d transmission device(s)",
                     self._server.host, self.port,
                     "" if udp is None else f", UDP {self.udp_port}", len(self.panels))
            self.ready.set()
            if udp is None:
                await asyncio.Event().wait()  # serve until cancelled
            else:
                await self._serve_datagrams(datagrams)
        finally:
            self.ready.clear()
            if udp is not None:
                udp.close()
            listener.close()
            # a frame not journalled yet is not confirmed: its device sends it again
            conversations = list(self._conversations)
            for task in conversations:
                task.cancel()
            if conversations:
                await asyncio.wait(conversations, timeout=2)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await listener.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A new connection: its conversation runs in a task of this server's own, which
        the server cancels when it stops."""
        if self._connections >= self._server.max_connections:
            self._counters.inc("gb26875_connections_refused")
            self._counters.log_every(log, ("gb26875", "connections"), self._clock.monotonic(),
                                     60.0, "GB/T 26875.3: more than %d connections; further "
                                     "ones are closed at once", self._server.max_connections)
            writer.close()
            return
        self._connections += 1
        self._counters.inc("gb26875_connections")
        task = asyncio.create_task(self._serve(reader, writer),
                                   name=f"gw.gb26875.connection[{id(writer):x}]")
        self._conversations.add(task)
        task.add_done_callback(self._conversations.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        except (ConnectionError, OSError):
            self._counters.inc("gb26875_connections_lost")
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        stream = FrameStream()
        device = UNKNOWN  # the transmission device on this connection, once it says
        while True:
            try:
                async with asyncio.timeout(self._server.idle_timeout_s):
                    chunk = await reader.read(_READ_BYTES)
            except TimeoutError:
                self._counters.inc("gb26875_idle_closed")
                return
            device = await self._handle(stream.feed(chunk) if chunk else stream.close(),
                                        device, send)
            if not chunk:
                return

    async def _serve_datagrams(self, datagrams: _Datagrams) -> None:
        """One datagram after the other; each is whole frames (a frame cut short is
        truncated), answered to the address it came from."""
        while True:
            data, address = await datagrams.queue.get()

            async def send(answer: bytes, to: tuple[str, int] = address) -> None:
                datagrams.send(answer, to)

            stream = FrameStream()
            await self._handle(stream.feed(data) + stream.close(), UNKNOWN, send)

    async def _handle(self, items: list[Frame | Rejected], device: str, send: Send) -> str:
        """Take what a connection or datagram brought; returns the transmission device it
        came from, as far as known."""
        for item in items:
            if isinstance(item, Rejected):
                self._counters.reject(log, device, item.reason, item.detail)
                if item.header is not None and item.header.source in self.panels:
                    await self._answer(send, item.header, Command.DENY)
                continue
            panel = self.panels.get(item.source)
            if panel is None:
                self._counters.reject(log, UNKNOWN, "unknown_source", f"a frame from "
                                      f"address {item.source}, which no transmission "
                                      "device in the configuration has")
                await self._answer(send, item, Command.DENY)
                continue
            device = panel.transmitter
            await self._frame(send, panel, item)
        return device

    async def _frame(self, send: Send, panel: PanelMap, frame: Frame) -> None:
        assert self._intake is not None
        device = panel.transmitter
        self._intake.seen(device)
        for place in panel.places.values():  # reachable through their panel
            self._intake.seen(place.device)
        self._counters.inc("gb26875_frames", device=device)
        if frame.command == Command.CONFIRM:
            return  # the device confirms what the gateway sent it
        if frame.command not in (Command.SEND, Command.RESPONSE):
            self._counters.reject(log, device, "unexpected_command",
                                  f"command {frame.command} from a transmission device")
            await self._answer(send, frame, Command.DENY)
            return
        answered = frame.command == Command.SEND  # a response answers a request
        if not frame.data:  # a heartbeat
            if answered:
                await self._answer(send, frame, Command.CONFIRM)
            return
        try:
            unit = decode_unit(frame.data)
        except UnitError as exc:
            self._counters.reject(log, device, exc.reason, exc.detail)
            # an unknown type in a well-formed frame is answered as received
            if answered:
                await self._answer(send, frame, Command.CONFIRM
                                   if exc.reason == "unknown_type" else Command.DENY)
            return
        journalled = await self._journal(panel, frame, unit)
        if journalled:
            self._counters.recovered(device)
        if answered:
            await self._answer(send, frame, Command.CONFIRM if journalled else Command.DENY)

    async def _journal(self, panel: PanelMap, frame: Frame, unit: Unit) -> bool:
        """Journal what the unit reports; False if it could not be (the device sends it
        again on the deny)."""
        assert self._intake is not None
        device = panel.transmitter
        receipt = self._receipt(frame)
        if receipt is None:
            self._counters.inc("redelivered", device=device)
            return True
        decoded = panel.decode(unit, self._clock.now_ms())
        if decoded.unmapped:
            self._counters.inc("gb26875_unmapped_components", decoded.unmapped, device=device)
            self._counters.log_once(log, ("gb26875", "unmapped", device), "%s reports "
                                    "components that no device names (gb26875.component); "
                                    "they are reported on %s itself", device, device)
        for reason, detail in decoded.problems:
            self._counters.reject(log, device, reason, detail)
        for reading in decoded.readings:
            self._intake.reading(reading)
        if decoded.events:
            try:
                await self._intake.events(decoded.events,
                                          None if receipt is _NO_RECEIPT else receipt)
            except Exception as exc:  # not on disk: not received
                self._counters.inc("gb26875_not_journalled", device=device)
                self._counters.log_every(
                    log, ("gb26875", "not_journalled", device), self._clock.monotonic(), 60.0,
                    "%s: a frame's %d event(s) were not journalled (%s); the device is denied "
                    "and sends them again (gb26875_not_journalled counts these)", device,
                    len(decoded.events), exc)
                return False
        elif receipt is not _NO_RECEIPT and self._receipts is not None:
            self._receipts.note(receipt)
        panel.remember(decoded)
        return True

    def _receipt(self, frame: Frame) -> Receipt | None:
        """The receipt to journal with the frame's events; None when it is a retransmission
        of a frame journalled already."""
        if self._receipts is None or not self._window_ms:
            return _NO_RECEIPT
        digest = hashlib.blake2b(bytes((frame.command,)) + frame.data,
                                 digest_size=16).digest()
        key = f"{RECEIPT_PREFIX}{frame.source}:{frame.serial}"
        now = self._clock.now_ms()
        known = self._receipts.receipt(key)
        if known is not None and known.digest == digest and now - known.at <= self._window_ms:
            return None
        return Receipt(key, digest, now)

    async def _answer(self, send: Send, frame: Frame, command: Command) -> None:
        # from the address the device sent to, with its serial number
        self._counters.inc("gb26875_answers", command=command.name.lower())
        await send(frame.answer(command, self.time_tag()).encode())

    def time_tag(self) -> TimeTag:
        """Now on the gateway's clock, in local time as the devices keep it."""
        return TimeTag.of(datetime.fromtimestamp(self._clock.now_ms() / 1000))
