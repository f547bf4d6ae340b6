"""One connection's incoming messages, on their way to the handlers and acknowledged after.

A message's handlers run at once when nothing of its topic is still in flight; what they
leave to await (journalling) runs as a task, and later messages of that topic wait for it:
concurrent across topics (so journal commits group), in order within one.

A QoS 1 message is acknowledged only once its handlers are done with it (its events are
journalled), and acknowledgements go out in the order the messages came, as MQTT wants.
A message that could not be journalled is not acknowledged: the broker keeps it, and the
connection ends after REDELIVER_AFTER_S so that the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.core.clock import Clock
from gateway.core.counters import Counters
from gateway.core.inbound import Handler, Inbound
from gateway.journal import NotJournalledError
from gateway.link.routes import Routes

log = logging.getLogger(__name__)

PIPELINE = 256  # incoming QoS 1 messages in flight, unacknowledged: reading stops beyond
QOS0_BACKLOG = 10_000  # incoming QoS 0 messages waiting to be journalled before more drop
# while the process is near its memory ceiling: reading stops at this many QoS 1 messages
# unacknowledged, and QoS 0 messages beyond it waiting are dropped
TIGHT_PIPELINE = 16
NO_BYTE_BOUND = 1 << 62
RECHECK_S = 0.002  # while reading is held for what follows, how often that is looked at
# QoS 0 messages read between two looks at whether what follows is behind: a look is a
# dozen calls, a good part of what a message costs under load. At most 31 messages more
# get in: 3 % of the 1,024 readings the rules may be behind, and against the 64 records
# the MQTT sink may be behind, half as many again of messages with events
LOOK_EVERY = 32
REDELIVER_AFTER_S = 2.0  # a message not journalled is asked for again after this

Work = list[tuple[Awaitable[None], Handler]]


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a connection read and the gateway has not handled yet."""

    messages: int
    bytes: int
    # age of the oldest QoS 1 message not yet acknowledged, or how long the socket has
    # held more than was read, whichever is longer (0: neither)
    oldest_s: float


IDLE = Backlog(0, 0, 0.0)


async def _refuse(topic: str) -> None:
    raise NotJournalledError("earlier_refused", f"an earlier message on {topic} was not "
                             "journalled")


class Dispatch:
    """Routes a connection's messages to the handlers, and acknowledges them in order."""

    def __init__(
        self,
        routes: Routes,
        counters: Counters,
        clock: Clock,
        acknowledge: Callable[[int, int], None],
        pause: Callable[[bool], None],
        *,
        max_bytes: int = NO_BYTE_BOUND,
        tight: bool = False,
        behind: Callable[[], bool] | None = None,
    ) -> None:
        self._routes = routes
        # payload bytes held at most, QoS 1 (reading stops) and QoS 0 (more are dropped) each
        self._max_bytes = max_bytes
        self._tight = tight
        # whether what follows the handlers (the rules, the sinks) is too far behind for
        # this connection to read more: it is held until they catch up
        self._downstream = behind
        self._recheck: asyncio.TimerHandle | None = None
        self._look_in = 1  # QoS 0 messages until the next look at what follows: the first
        self._counters = counters
        self._clock = clock
        self._acknowledge = acknowledge
        self._pause = pause
        self._paused = False
        self.chains: dict[str, asyncio.Task[None]] = {}
        self.handlers: set[asyncio.Task[None]] = set()
        # topics with a message not journalled: their later messages wait for the next
        # connection too, so the broker delivers them again in their order
        self.refused: set[str] = set()
        self._unacked: deque[tuple[Inbound, asyncio.Task[None] | None]] = deque()
        # when each unacknowledged message was read (monotonic), and their payloads' bytes
        self._read_at: deque[float] = deque()
        self.held_bytes = 0
        self._qos0_bytes = 0  # payloads of QoS 0 messages waiting for their handlers
        # since when the connection's socket has held more than the gateway read, without
        # a break (monotonic); None: it was emptied by the last read
        self._behind_since: float | None = None
        # completes when the connection should end for the broker to deliver again
        self.redeliver: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def deliver(self, message: Inbound) -> None:
        """A message as it is read: handled, and acknowledged once handled."""
        size = len(message.payload)
        if message.qos == 0:
            waiting = len(self.handlers)
            if (waiting >= (TIGHT_PIPELINE if self._tight else QOS0_BACKLOG)
                    or self._qos0_bytes + size > self._max_bytes):  # a QoS 0 flood is cut
                self._counters.inc("dropped", cls="telemetry", reason="incoming_backlog")
                return
            if message.topic in self.chains:
                held = self._accept(message)
            else:  # as `_accept`, for a topic with nothing in flight: most messages
                work = self._start(message)
                held = None if work is None else self._chain(message, None, work)
            if held is not None and size:
                self._qos0_bytes += size
                held.add_done_callback(functools.partial(self._qos0_done, size))
            if not self._paused:
                self._look_in -= 1
                if self._look_in <= 0:
                    self._look_in = LOOK_EVERY
                    if self._held_back():  # what follows is behind
                        self._paused = True
                        self._pause(True)
            return
        task = self._accept(message)
        self._unacked.append((message, task))
        self._read_at.append(self._clock.monotonic())
        self.held_bytes += size
        if task is None:
            self._drain()
        else:
            task.add_done_callback(self._drain_after)
        if not self._paused and self._full():
            self._paused = True
            self._pause(True)  # back-pressure: the broker's socket is not read meanwhile

    def _held_back(self) -> bool:
        if self._downstream is None or not self._downstream():
            return False
        if self._recheck is None:
            self._recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._again)
        return True

    def _again(self) -> None:
        self._recheck = None
        if self._paused and self._roomy():
            self._paused = False
            self._pause(False)

    def tighten(self, tight: bool) -> None:
        """Near the memory ceiling (True): hold at most TIGHT_PIPELINE messages; or the
        usual bounds again (False)."""
        self._tight = tight
        if tight and not self._paused and self._full():
            self._paused = True
            self._pause(True)
        elif not tight:
            self._drain()

    def _full(self) -> bool:
        limit = TIGHT_PIPELINE if self._tight else PIPELINE
        return (len(self._unacked) >= limit or self.held_bytes >= self._max_bytes
                or self._held_back())

    def _roomy(self) -> bool:
        """Room again, with hysteresis: half the bounds; and what follows has caught up."""
        limit = TIGHT_PIPELINE if self._tight else PIPELINE
        return (len(self._unacked) < limit // 2 and self.held_bytes < self._max_bytes // 2
                and not self._held_back())

    def _qos0_done(self, size: int, task: asyncio.Task[None]) -> None:
        self._qos0_bytes -= size

    def _accept(self, message: Inbound) -> asyncio.Task[None] | None:
        """Handle `message`; the task still working on it, if any."""
        topic = message.topic
        if message.qos > 0 and topic in self.refused:
            return asyncio.create_task(_refuse(topic), name=f"gw.mqtt.in[{topic}]")
        previous = self.chains.get(topic)
        work = self._start(message) if previous is None else None
        if previous is None and work is None:
            return None
        return self._chain(message, previous, work)

    def _chain(self, message: Inbound, previous: asyncio.Task[None] | None,
               work: Work | None) -> asyncio.Task[None]:
        """A task finishing `message` after `previous`, the topic's last until it ends."""
        topic = message.topic
        task = asyncio.create_task(self._finish(previous, message, work),
                                   name=f"gw.mqtt.in[{topic}]")
        self.chains[topic] = task
        self.handlers.add(task)
        task.add_done_callback(functools.partial(self._forget, topic))
        return task

    def _forget(self, topic: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # looked at: a QoS 0 message's refusal is no one's to report
        self.handlers.discard(task)
        if self.chains.get(topic) is task:
            del self.chains[topic]

    def _drain_after(self, task: asyncio.Task[None]) -> None:
        self._drain()

    def _drain(self) -> None:
        """Acknowledge, in arrival order, every message whose handlers are done."""
        unacked = self._unacked
        while unacked:
            message, task = unacked[0]
            if task is not None and not task.done():
                break
            unacked.popleft()
            self._read_at.popleft()
            self.held_bytes -= len(message.payload)
            if task is None:
                self._acknowledge(message.mid, message.qos)
            elif task.cancelled():
                continue  # the connection closed: the broker delivers it again
            elif isinstance(task.exception(), NotJournalledError):
                self._not_acknowledged(message)
            else:
                # a crash before this point makes the broker deliver the message again
                self._acknowledge(message.mid, message.qos)
        if self._paused and self._roomy():
            self._paused = False
            self._pause(False)

    def behind(self, behind: bool) -> None:
        """The connection says whether its socket holds more than was read."""
        if not behind:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = self._clock.monotonic()

    def backlog(self) -> Backlog:
        """Messages read and not yet handled: how many, their bytes, and how far behind:
        the oldest's age, or, when longer, how long the socket has held more than was
        read without a break (the broker's queue is at least that old)."""
        waiting = len(self._unacked) + len(self.handlers)
        oldest = self._read_at[0] if self._read_at else self._behind_since
        if self._behind_since is not None and oldest is not None:
            oldest = min(oldest, self._behind_since)
        age = 0.0 if oldest is None else max(self._clock.monotonic() - oldest, 0.0)
        return Backlog(waiting, self.held_bytes + self._qos0_bytes, age)

    def _not_acknowledged(self, message: Inbound) -> None:
        """A message the gateway could not journal stays the broker's: it is not
        acknowledged, and the connection ends after REDELIVER_AFTER_S, because a broker
        delivers an unacknowledged message again only on a new connection."""
        topic = message.topic
        self._counters.inc("mqtt_not_acknowledged", topic=topic)
        if not self.refused:
            log.error("a message on %s could not be journalled and was not acknowledged; "
                      "the broker keeps it and delivers it again on a new connection in "
                      "%.1f s", topic, REDELIVER_AFTER_S)
            timer = asyncio.create_task(self._end_later(), name="gw.mqtt.redeliver")
            self.handlers.add(timer)  # cancelled with the connection's handlers
            timer.add_done_callback(self.handlers.discard)
        self.refused.add(topic)

    async def _end_later(self) -> None:
        await self._clock.sleep(REDELIVER_AFTER_S)
        if not self.redeliver.done():
            self.redeliver.set_result(None)

    async def _finish(self, previous: asyncio.Task[None] | None, message: Inbound,
                      work: Work | None) -> None:
        if previous is not None:
            if not previous.done():
                await asyncio.wait([previous])
            if not previous.cancelled() and isinstance(previous.exception(),
                                                       NotJournalledError):
                await _refuse(message.topic)  # after it, in its order
            work = self._start(message)
        refused: NotJournalledError | None = None
        for awaitable, handler in work or ():
            try:
                await awaitable
            except NotJournalledError as exc:  # not received: the broker must keep it
                refused = exc
            except Exception:  # one bad handler must not take the connection down
                self._failed(message, handler)
        if refused is not None:
            raise refused

    def _start(self, message: Inbound) -> Work | None:
        """Call the message's handlers; what they returned to await, or None."""
        later: Work | None = None
        handlers = self._routes.handlers(message.topic)
        if not handlers:  # a subscription the broker kept from an earlier configuration
            self._counters.inc("mqtt_unrouted")
        for handler in handlers:
            try:
                result = handler(message)
            except Exception:  # one bad handler must not take the connection down
                self._failed(message, handler)
                continue
            if result is not None:
                if later is None:
                    later = []
                later.append((result, handler))
        return later

    def _failed(self, message: Inbound, handler: Handler) -> None:
        # labelled by handler: a topic from outside would make a counter per topic
        self._counters.inc("handler_errors",
                           handler=str(getattr(handler, "__qualname__", "handler")))
        log.exception("handler %s for %s failed", getattr(handler, "__qualname__", handler),
                      message.topic)

    async def close(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
