"""One Dahua terminal's event stream, held open: `GET /cgi-bin/eventManager.cgi?action=attach`.

The terminal answers with HTTP digest authentication only, then with an endless
`multipart/x-mixed-replace` response: one part per event, and a `Heartbeat` part every
`dahua.heartbeat_s` (asked for in the request). The stream is read as it comes; an event
is journalled before the next part is read, so a slow journal slows the reading, not the
memory. An event the journal refuses waits in the stream's backlog with the later ones
behind it, in order, and is handed over again in the background (`drivers.handover.Backlog`,
up to 64 waiting): the stream is read on meanwhile. Every part, heartbeat or event, marks
the terminal alive (it goes offline after two heartbeat intervals without one), so a
journal that cannot write does not take the terminal offline.

When nothing arrives for two heartbeat intervals, or the stream breaks, ends or brings a
part that cannot be read, the connection is dropped and made again after a capped,
jittered backoff (reset once the new stream brought a part). A terminal sends again, on a
new stream, the events it could not deliver: an event whose own identity (code, index,
`UTC`, `RecNo`) was journalled already is recognised and journalled once.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from yarl import URL

from drivers.dahua.events import Mapped, StreamEventError, map_event, parse_part
from drivers.digest import DigestClient, DigestError
from drivers.handover import Backlog
from drivers.intake import MessageIntake
from drivers.multipart import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartHead,
    boundary_of,
)
from drivers.pseudonym import Pseudonymiser
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.config import DahuaDevice
from gateway.core.counters import Counters
from gateway.core.journaling import Receipt, ReceiptBook

log = logging.getLogger(__name__)

RECEIPT_PREFIX = "dahua:"
LOG_EVERY_S = 60.0


class StreamBroken(Exception):
    """The stream cannot go on; `reason` is the counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class DahuaStream:
    """Holds one terminal's event stream open and journals what it reports."""

    def __init__(self, device: DahuaDevice, clock: Clock, counters: Counters,
                 pseudonymise: Pseudonymiser | None,
                 receipts: ReceiptBook | None = None) -> None:
        self.device = device
        self._clock = clock
        self._counters = counters
        self._pseudonymise = pseudonymise
        self._receipts = receipts
        settings = device.dahua
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._digest = DigestClient(settings.username, settings.password)
        codes = ",".join(settings.codes)
        self.url = URL(f"http://{settings.host}:{settings.port}/cgi-bin/eventManager.cgi"
                       f"?action=attach&codes=[{codes}]&heartbeat={settings.heartbeat_s:g}",
                       encoded=True)
        self._prefix = f"{RECEIPT_PREFIX}{device.id}:"
        self.attached = asyncio.Event()  # set while a stream is open
        self._backlog: Backlog | None = None
        self._waiting: dict[str, bytes] = {}  # receipt key -> digest, of events refused

    @property
    def name(self) -> str:
        return f"dahua[{self.device.id}]"

    async def run(self, intake: MessageIntake) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=self.device.dahua.connect_timeout_s)
        async with Backlog(intake, self._clock, self._counters) as backlog, \
                aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            self._backlog = backlog
            while True:
                try:
                    await self._attach(session, intake)
                    reason, detail = "ended", "the terminal ended the stream"
                except StreamBroken as exc:
                    reason, detail = exc.reason, str(exc)
                except (aiohttp.ClientError, OSError) as exc:
                    reason, detail = "connection", f"{type(exc).__name__}: {exc}"
                finally:
                    self.attached.clear()
                self._counters.inc("dahua_reconnects", device=self.device.id, reason=reason)
                self._counters.log_every(log, ("dahua", self.device.id, reason),
                                         self._clock.monotonic(), LOG_EVERY_S,
                                         "%s: event stream lost (%s): %s; attaching again "
                                         "with backoff; logged at most once a minute",
                                         self.device.id, reason, detail)
                await self._clock.sleep(self._backoff.next_delay())

    async def _attach(self, session: aiohttp.ClientSession, intake: MessageIntake) -> None:
        uri = self.url.raw_path_qs
        # the first request answers the last stream's challenge (or none): a 401 brings a
        # fresh one; a 401 to the answer of a fresh one means wrong credentials
        for attempt in range(2):
            headers = ({"Authorization": self._digest.authorization("GET", uri)}
                       if self._digest.ready else {})
            async with session.get(self.url, headers=headers) as response:
                if response.status == 401:
                    try:
                        self._digest.challenged(response.headers.get("WWW-Authenticate", ""))
                    except DigestError as exc:
                        raise StreamBroken("unauthorised",
                                           f"the terminal asks for no usable digest: "
                                           f"{exc}") from None
                    if attempt:
                        raise StreamBroken("unauthorised", "the terminal refused the user "
                                           "name or password (dahua.username, "
                                           "dahua.password)")
                    continue
                if response.status != 200:
                    raise StreamBroken("http_status", f"HTTP {response.status}")
                await self._read(response, intake)
                return

    async def _read(self, response: aiohttp.ClientResponse, intake: MessageIntake) -> None:
        settings = self.device.dahua
        try:
            reader = MultipartReader(boundary_of(response.headers.get("Content-Type", "")))
        except MultipartError as exc:
            raise StreamBroken("malformed_stream", str(exc)) from None
        self.attached.set()
        part: bytearray | None = None
        silence = 2 * settings.heartbeat_s
        while True:
            try:
                async with asyncio.timeout(silence):
                    chunk = await response.content.readany()
            except TimeoutError:
                raise StreamBroken("heartbeat", f"nothing for {silence:g} s (two heartbeat "
                                   "intervals)") from None
            if not chunk:
                if reader.in_part:
                    raise StreamBroken("ended", "the stream ended inside an event")
                return
            try:
                pieces = reader.feed(chunk)
            except MultipartError as exc:
                raise StreamBroken("malformed_stream", str(exc)) from None
            for piece in pieces:
                if isinstance(piece, PartHead):
                    part = bytearray()
                elif isinstance(piece, PartData) and part is not None:
                    part += piece.data
                    if len(part) > settings.max_part_bytes:
                        raise StreamBroken("part_too_large", f"a part larger than "
                                           f"{settings.max_part_bytes} bytes "
                                           "(dahua.max_part_bytes)")
                elif isinstance(piece, PartEnd) and part is not None:
                    text, part = bytes(part), None
                    await self._part(text, intake)
            if reader.done:
                return

    async def _part(self, raw: bytes, intake: MessageIntake) -> None:
        device = self.device.id
        try:
            event = parse_part(raw.decode("utf-8"))
        except (StreamEventError, UnicodeDecodeError) as exc:
            self._counters.reject(log, device, "malformed_event", str(exc))
            return
        self._backoff.reset()  # the stream works: a later loss starts the backoff afresh
        intake.seen(device)
        if event is None:
            self._counters.inc("heartbeats", device=device)
            return
        mapped = map_event(event, self.device.kind, device, self._clock.now_ms(),
                           self._pseudonymise, self._prefix)
        for what, count in mapped.dropped.items():
            self._counters.inc("privacy_dropped", count, device=device, what=what)
        for reason, detail in mapped.problems:
            self._counters.reject(log, device, reason, detail)
        if mapped.ignored is not None:
            self._counters.inc("dahua_ignored", device=device, reason=mapped.ignored)
        if mapped.reading is not None:
            intake.reading(mapped.reading)
        if mapped.events:
            await self._journal(mapped, intake)
        if not mapped.problems:
            self._counters.recovered(device)

    async def _journal(self, mapped: Mapped, intake: MessageIntake) -> None:
        assert self._backlog is not None
        key = mapped.key
        if key is None or self._receipts is None:
            for event in mapped.events:
                await self._backlog.give(event)
            return
        known = self._receipts.receipt(key)
        if ((known is not None and known.digest == mapped.digest)
                or self._waiting.get(key) == mapped.digest):
            self._counters.inc("duplicates_dropped", device=self.device.id)
            return
        # the terminal sends an event once: refused, it waits in the backlog (its receipt
        # with it, and its identity here, so that a copy sent on a new stream meanwhile is
        # recognised) and is handed over again
        receipt = Receipt(key, mapped.digest, self._clock.now_ms())
        events, waiting = mapped.events, self._waiting

        async def give() -> None:
            await intake.events(events, receipt)
            if waiting.get(key) == receipt.digest:
                del waiting[key]

        waiting[key] = receipt.digest
        await self._backlog.give_all(events, give)
