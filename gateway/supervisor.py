"""The running gateway: wires drivers, journal, rules and sinks, and owns their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from drivers.elder_button_gpio import ElderButtonGpio
from drivers.handover import keep_handing
from drivers.json_map import JsonMap
from drivers.mqtt_ingress import RECEIPT_PREFIX, MqttIngress, availability_topic, inline_mapping
from drivers.profile import BUILTIN, ProfileLibrary
from drivers.pseudonym import Pseudonymiser
from drivers.registry import Context, build_drivers
from drivers.zigbee2mqtt import BridgedDevice, Zigbee2MqttBridges
from gateway.acks import AckDesk
from gateway.clock_sync import ClockProbe, read_kernel_clock, trustworthy
from gateway.console.alert_log import AlertLog
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock, SystemClock
from gateway.core.config import (
    BROKER_MESSAGE_LIMIT,
    AnyDevice,
    DahuaDevice,
    GatewayConfig,
    GpioDevice,
    Location,
    ModbusDevice,
    MqttDevice,
)
from gateway.core.counters import Counters
from gateway.core.kinds import MODELS, make_event
from gateway.core.model import (
    AckCommand,
    Alert,
    DeliveryClass,
    DeviceEvent,
    DeviceKind,
    Reading,
    new_id,
)
from gateway.core.right_of_way import RightOfWay
from gateway.core.telemetry import TelemetryBuffer
from gateway.core.timeline import Timeline
from gateway.core.topics import Topics
from gateway.core.waiting import first_of
from gateway.journal import Journal, JournalFullError, NotJournalledError, Quota, Receipt
from gateway.journal_desk import JournalDesk, socket_path
from gateway.memory_ceiling import MemoryCeiling, intake_bytes
from gateway.mqtt_link import LastWill, MqttLink
from gateway.overload import DEVICE as GATEWAY_DEVICE
from gateway.overload import OverloadWatch
from gateway.restart import keep_running
from gateway.sinks.mqtt_sink import CONSUMER as MQTT
from gateway.sinks.mqtt_sink import MqttSink
from gateway.sinks.notify_sink import NotifySink, needs_apprise
from gateway.sinks.points import PointMaker
from gateway.sinks.store_sink import CONSUMER as STORE
from gateway.sinks.store_sink import StoreSink
from gateway.sinks.store_writer import Writer, writer_for
from gateway.status import Status, StatusBoard, supervise
from gateway.status_report import StatusSnapshot, keep_writing, status_path
from rules.contacts import load_contacts
from rules.directory import directory_from_config
from rules.engine import RuleEngine
from rules.loader import load_pack, rule_sources
from rules.problems import RuleError
from rules.runner import CONSUMER as RULES
from rules.runner import AlarmLaneClosedError, RuleRunner

if TYPE_CHECKING:
    from gateway.upstreams.city_acks import CityAckListener
    from gateway.upstreams.sink import UpstreamSink

log = logging.getLogger(__name__)

CLOCK_CHECK_S = 30.0  # how often the clock's sync state is read
AUDIT_PRUNE_S = 3600.0  # how often audit rows past their retention are deleted
OFFLINE_KEY = "status.offline"  # journal state: devices whose last status event was offline
SHED_EVERY_MS = 1000  # under overload: a coalescible device's readings, one a second
BULK_PREFIX = "bulk:"  # receipt keys of the readings' session: its own packet ids
OVERLOADED = "gateway.overloaded"  # the built-in rule (rules/loader.py)
OVERLOAD_SAMPLE_S = 0.5  # how often the lanes' backlogs are looked at
# the bulk session reads no more (and the HTTP push port holds the pushes of all but alarm
# devices) while the alerts and events not yet published on MQTT (those published and not
# yet acknowledged are bounded by the sink's batches in flight), or the readings the rules have not
# evaluated, are beyond these: an alarm's alert then waits behind at most that much, and
# the rest of a storm waits in the broker (or in the devices)
HOLD_RECORDS = 64
RULES_RETRY_MIN_S = 0.05  # the rules task started again after a failure: first delay
RULES_RETRY_MAX_S = 5.0  # and its cap
HOLD_READINGS = 1024


class Gateway:
    """One compound's gateway. `run` until `stop()`; SIGTERM handling lives in the CLI."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock | None = None,
        pin_factory: Any = None,
        writer: Writer | None = None,
        clock_probe: ClockProbe = read_kernel_clock,
    ) -> None:
        self.config = config
        self._clock_probe = clock_probe
        self.clock_synchronised: bool | None = None  # None: not known (yet, or not Linux)
        self._locations = {d.id: d.location for d in config.devices}
        self.clock = clock or SystemClock()
        self.counters = Counters()
        self.topics = Topics(config.site)
        mb = 2**20
        self.journal = Journal(config.journal.path, quota=Quota(
            max_bytes=int(config.journal.max_mb * mb),
            alarm_reserve=int(config.journal.alarm_reserve_mb * mb),
            min_free_disk=int(config.journal.min_free_disk_mb * mb)))
        self.telemetry = TelemetryBuffer(config.journal.telemetry_capacity, self.counters)
        self._telemetry_hold = config.journal.telemetry_capacity // 2
        self.board = StatusBoard()
        # an alarm on its way to the broker: the work that only moves readings steps aside
        self.right_of_way = RightOfWay()
        # the process's memory: each broker session holds a bounded share of it, and reads
        # sparingly near the ceiling
        self.memory = MemoryCeiling(int(config.limits.memory_mb * mb), self.clock,
                                    self.counters)
        held = intake_bytes(self.memory.ceiling)
        self.link = MqttLink(
            config.broker,
            config.client_id,
            LastWill(self.topics.gateway_status, Status.OFFLINE.encode()),
            self.clock,
            self.counters,
            max_bytes=held,
            right_of_way=self.right_of_way,
        )
        self.memory.listeners.append(self.link.tighten)
        self.contacts = load_contacts(config.contacts_file) if config.contacts_file else None
        self.rules = RuleEngine(load_pack(rule_sources(config), self.contacts, builtin=True),
                                directory_from_config(config), self.contacts)
        self.runner = RuleRunner(self.journal, self.rules, self.telemetry, self.clock,
                                 self._feedback, self.counters, right_of_way=self.right_of_way)
        self.mqtt_sink = MqttSink(self.link, self.journal, self.telemetry, self.board,
                                  self.topics, self.counters, self.clock,
                                  config.broker.replay_window_s,
                                  right_of_way=self.right_of_way)
        self.store_sink = StoreSink(
            config.store,
            writer or writer_for(config.store, os.environ),
            PointMaker(config.site, self._location),
            self.journal,
            self.telemetry,
            self.clock,
            self.counters,
            right_of_way=self.right_of_way,
        )
        # outside platforms, each behind its sharing policy, with a cursor of its own
        self.upstreams: list[UpstreamSink] = []
        if config.upstreams:  # their modules only where a compound shares
            from gateway.upstreams.build import build_upstreams

            self.upstreams = build_upstreams(config, self.journal, self.clock, self.counters,
                                             os.environ)
        self.pin_factory = pin_factory if pin_factory is not None else _pin_factory(config)
        self.profiles = ProfileLibrary([BUILTIN, *config.profile_dirs])
        self.pseudonymise = _pseudonymiser(config)
        self.drivers = build_drivers(Context(config, self.profiles, self.clock, self.counters,
                                             self.pseudonymise, self.pin_factory,
                                             receipts=self.journal,
                                             behind=self._push_behind))
        self.buttons = {d.device.id: d for d in self.drivers if isinstance(d, ElderButtonGpio)}
        self._inline_mappings: dict[str, JsonMap] = {}
        # The alarm lane: the devices that call for help are read on the gateway's own
        # session, which publishes the alerts too; the others' readings on a session of
        # their own ("{client_id}-bulk"), so that a backlog of readings the broker hands
        # over (after an outage, a flood) never holds an alarm or its alert back.
        mqtt_devices = [d for d in config.devices if isinstance(d, MqttDevice)]
        self.bridges = Zigbee2MqttBridges(
            [self._bridged(d) for d in mqtt_devices
             if availability_topic(d, self.profiles) is not None],
            self, self.counters, BROKER_MESSAGE_LIMIT)
        lane = set(config.broker.alarm_lane_kinds) or {d.kind for d in mqtt_devices}
        self.ingress = self._ingress(self.link, [d for d in mqtt_devices if d.kind in lane],
                                     RECEIPT_PREFIX, self.bridges)
        bulk_devices = [d for d in mqtt_devices if d.kind not in lane]
        self.bulk_link: MqttLink | None = None
        self.bulk_ingress: MqttIngress | None = None
        if bulk_devices:
            self.bulk_link = MqttLink(config.broker, f"{config.client_id}-bulk", None,
                                      self.clock, self.counters, max_bytes=held,
                                      behind=self._downstream_behind,
                                      right_of_way=self.right_of_way)
            self.bulk_link.aside_burst = 0  # readings alone: none while an alarm is on its way
            self.memory.listeners.append(self.bulk_link.tighten)
            self.bulk_ingress = self._ingress(self.bulk_link, bulk_devices, BULK_PREFIX, None)
            self.link.read_elsewhere(self.bulk_ingress.topics)
            self.bulk_link.read_elsewhere(self.ingress.topics)
        self.acks = AckDesk(self.topics, self.rules, self.ack, self.counters,
                            config.broker.max_payload_bytes)
        self.link.subscribe(self.topics.alert_ack_filter, self.acks.handle)
        # the city board's acknowledgements, heard on each `jetstream` upstream's district
        self.city_acks: list[CityAckListener] = []
        if any(u.kind == "jetstream" for u in config.upstreams):
            from gateway.upstreams.city_acks import CityAckListener
            from gateway.upstreams.transport import Setting

            self.city_acks = [CityAckListener(u, Setting(config.site, os.environ, self.clock),
                                              self.acks, self.rules.active, self.counters)
                              for u in config.upstreams if u.kind == "jetstream"]
        self.notify_sink = NotifySink(
            self.journal, self.link, self.clock, self.counters,
            apprise_at_start=needs_apprise(self.contacts.every_target() if self.contacts else ()))
        # the operator's reports read the journal through the gateway while it runs
        self.desk = JournalDesk(self.journal, socket_path(config.journal), self.counters)
        # the console's alert timelines: transitions, notifications and people's notes
        self.alert_log: AlertLog | None = None
        if config.console is not None:
            self.alert_log = AlertLog(self.journal, self.clock, config.console.keep_days)
            self.notify_sink.listeners.append(self.alert_log.notified)
        self.console: Any = None  # the console's server, while it runs
        # the latest battery level (%) of each device that reports one, for the console
        self.batteries: dict[str, float] | None = {} if config.console is not None else None
        self.ready = asyncio.Event()
        self._alarm_refused = False  # an alarm found no room, none was journalled since
        self._stop = asyncio.Event()
        self._events_timeline = Timeline()
        self._shed_above = max(int(config.journal.telemetry_capacity * config.limits.shed_above),
                               1)
        self._kept_at: dict[str, int] = {}  # device -> ts of its last reading kept (shedding)
        self._readings_timeline = Timeline()

    # -- Intake, for the drivers --------------------------------------------------------

    async def event(self, event: DeviceEvent) -> None:
        await self.events([event])

    async def events(self, events: Sequence[DeviceEvent], receipt: Receipt | None = None
                     ) -> None:
        """Journal the events of one message in one commit, with the message's receipt.

        Raises NotJournalledError when an alarm could not be journalled, or any event
        could not be written: it was not received, and its source must give it again.
        """
        stamped = []
        for event in events:
            ts = self._events_timeline.stamp(event.device, event.ts)
            stamped.append(event if ts == event.ts else msgspec.structs.replace(event, ts=ts))
        alarm = next((e for e in stamped if e.cls is DeliveryClass.ALARM), None)
        claim = None if alarm is None else self.right_of_way.claim()
        try:
            if claim is None:
                await self.journal.commit(stamped, receipt=receipt)
            else:
                self.right_of_way.journalled(claim, await self._journal_alarm(stamped, receipt))
        except JournalFullError as exc:
            for event in stamped:
                self.counters.inc("dropped", cls=event.cls.value, reason=exc.reason)
            if alarm is not None:
                self._alarm_refused = True
                log.error("ALARM NOT JOURNALLED: %s %s from %s refused (%s); it is not "
                          "acknowledged to its source, which must give it again",
                          alarm.kind, alarm.type, alarm.device, exc)
                raise
            # the journal is refused to events before alarms: this is the counted loss
            self.counters.log_once(log, ("journal", exc.reason), "journal has no room (%s): "
                                   "%s events are refused and counted; alarms are still "
                                   "accepted", exc.reason, stamped[0].cls.value)
            return
        except NotJournalledError as exc:
            for event in stamped:
                self.counters.inc("dropped", cls=event.cls.value, reason=exc.reason)
            raise
        finally:
            if claim is not None and claim.through is None:  # not journalled: no way to keep
                self.right_of_way.end(claim)
        if self._alarm_refused and alarm is not None:
            self._alarm_refused = False
            log.warning("alarms are journalled again")
        for event in stamped:
            self.seen(event.device)
            self.counters.inc("events_accepted", cls=event.cls.value)

    async def _journal_alarm(self, events: list[DeviceEvent], receipt: Receipt | None
                             ) -> int:
        """An alarm's message goes to the rules, which journal it in one commit with the
        alert it raises; while they are not running, to the journal alone. Returns the
        commit's last record."""
        try:
            return (await self.runner.alarm(events, receipt, whole=True))[-1]
        except AlarmLaneClosedError:
            return (await self.journal.commit(events, receipt=receipt))[-1]

    def reading(self, reading: Reading) -> None:
        # the driver marked the device seen for the message that carried it (Intake.seen):
        # once per message, not again per reading
        if self.telemetry.pending(RULES) >= self._shed_above and self._shed(reading):
            return
        ts = self._readings_timeline.stamp(reading.device, reading.ts)
        if ts != reading.ts:
            reading = msgspec.structs.replace(reading, ts=ts)
        if self.batteries is not None:
            level = reading.values.get("battery_pct", reading.values.get("battery"))
            if isinstance(level, int | float) and not isinstance(level, bool):
                self.batteries[reading.device] = level
        self.telemetry.push(reading)

    def _shed(self, reading: Reading) -> bool:
        """Under overload (the rules behind by more than limits.shed_above of the buffer): a
        reading of a coalescible kind within a second of its device's last one kept is
        dropped, counted; readings where each is a person passing never are."""
        if not MODELS[reading.kind].coalescible:
            return False
        kept = self._kept_at.get(reading.device)
        if kept is not None and 0 <= reading.ts - kept < SHED_EVERY_MS:
            self.counters.inc("shed_readings", kind=reading.kind.value, reason="overload")
            return True
        self._kept_at[reading.device] = reading.ts
        return False

    def seen(self, device: str) -> None:
        self.board.seen(device, self.clock.monotonic())

    def unreachable(self, device: str) -> None:
        # a bridge's or a platform's word that the device left: offline now
        self.board.unreachable(device)

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> asyncio.Event:
        """Set once `stop()` was called: the gateway is shutting down."""
        return self._stop

    async def reload_rules(self) -> bool:
        """Load the rule files again; keep the running rules when the new ones are invalid."""
        try:
            pack = await asyncio.to_thread(functools.partial(
                load_pack, rule_sources(self.config), self.contacts, builtin=True))
        except RuleError as exc:
            self.counters.inc("rule_reloads", result="rejected")
            log.error("rules not reloaded, the running rules stay:\n%s", exc)
            return False
        except Exception as exc:  # whatever the files did to the loader, the old rules run on
            self.counters.inc("rule_reloads", result="failed")
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            log.error("rules not reloaded, the running rules stay: %s", reason)
            return False
        transitions = self.rules.reload(pack)
        await self.journal.commit([*transitions, *self.rules.take_notifications()],
                                  state=self.runner.state_rows())
        for alert in transitions:
            self._feedback(alert)
        self.counters.inc("rule_reloads", result="applied")
        log.info("rules reloaded: %d rule(s)", len(pack.rules))
        return True

    async def run(self) -> None:
        async with self.journal, asyncio.TaskGroup() as group:
            await self.runner.restore()
            if self.alert_log is not None:
                await self.alert_log.load()
            active = self.rules.active()
            self.mqtt_sink.seed(active)
            for alert in active:
                self._feedback(alert)
            now = self.clock.monotonic()
            for device in self.config.devices:
                self.board.add(device.id, device.kind, self._heartbeat(device), now)
                if isinstance(device, GpioDevice):
                    self.board.set(device.id, Status.ONLINE)  # wired: present while we run

            def task(name: str, run: Callable[[], Awaitable[None]],
                     backoff: Backoff | None = None) -> asyncio.Task[None]:
                return group.create_task(
                    keep_running(name, run, self.clock, self.counters, backoff), name=name)

            core = [
                task("gw.mqtt.link", self.link.run),
                *([task("gw.mqtt.bulk", self.bulk_link.run)] if self.bulk_link else []),
                # the alerts wait for the rules: after a refused commit, within 5 s at most
                # of the journal writing again, not the 30 s of the other tasks' cap
                task("gw.rules", self.runner.run, Backoff(RULES_RETRY_MIN_S, RULES_RETRY_MAX_S)),
                task("gw.sink.mqtt", self.mqtt_sink.run),
                task("gw.sink.store", self.store_sink.run),
                task("gw.sink.notify", self.notify_sink.run),
                *(task(f"gw.upstream[{u.name}]", u.run) for u in self.upstreams),
                *(task(f"gw.city_acks[{i}]", c.run) for i, c in enumerate(self.city_acks)),
                task("gw.liveness", functools.partial(supervise, self.board, self.clock)),
                task("gw.status.events", self._journal_status_changes),
                task("gw.journal.prune", self._prune),
                task("gw.clock.sync", self._watch_clock),
                task("gw.memory", self.memory.run),
                task("gw.overload", self._watch_overload),
                task("gw.status.file", functools.partial(
                    keep_writing, status_path(self.config.journal), self.snapshot,
                    self.clock)),
                task("gw.journal.desk", self.desk.run),
            ]
            if self.config.metrics is not None:
                from gateway.metrics import MetricsServer  # aiohttp.web, prometheus_client

                server = MetricsServer(self, self.config.metrics)
                core.append(task("gw.metrics", server.run))
            if self.config.console is not None and self.alert_log is not None:
                from gateway.console.accounts import users_path
                from gateway.console.server import ConsoleServer  # aiohttp.web, argon2

                self.console = ConsoleServer(self, self.alert_log, self.config.console,
                                             users_path(self.config))
                core.append(task("gw.console.timelines", self.alert_log.run))
                core.append(task("gw.console", self.console.run))
            drivers = [
                task(f"gw.{driver.name}", functools.partial(driver.run, self))
                for driver in self.drivers
            ]
            log.info("gateway for site %s running with %d device(s)", self.config.site,
                     len(self.config.devices))
            self.ready.set()
            await self._stop.wait()
            await self._shutdown(drivers, core)

    async def _shutdown(self, drivers: list[asyncio.Task[None]], core: list[asyncio.Task[None]]
                        ) -> None:
        """Stop intake, drain, say offline, stop the rest: each step bounded."""
        bound = self.config.shutdown_timeout_s
        log.info("stopping: buttons released, draining the journal to the sinks")
        for task in drivers:
            task.cancel()
        await _settle(drivers, bound, "driver")
        self.store_sink.flush()
        try:
            async with asyncio.timeout(bound):
                await self.runner.caught_up()
                try:
                    await self.runner.save()
                except NotJournalledError as exc:  # a full disk: only lazy state is at stake
                    log.warning("rule state not saved at the stop (%s): rates start from "
                                "older samples at the next start", exc)
                # upstreams are not waited for: one that is down would hold every stop
                # for the whole bound; they go on from their cursors at the next start.
                # The replay after a broker loss is waited for: what that broker confirmed
                # and lost reaches MQTT only through it, and nothing replays it later
                while (min(self.local_sink_cursors().values()) < self.journal.last_seq
                       or self.mqtt_sink.replaying):
                    self.mqtt_sink.moved.clear()
                    self.store_sink.moved.clear()
                    self.notify_sink.moved.clear()
                    await first_of(self.mqtt_sink.moved, self.store_sink.moved,
                                   self.notify_sink.moved)
        except TimeoutError:
            behind = self.journal.last_seq - min(self.local_sink_cursors().values())
            if behind > 0 or not self.mqtt_sink.replaying:
                log.warning("shutdown bound reached; %d record(s) stay in the journal for "
                            "the next start", behind)
            if self.mqtt_sink.replaying:
                log.warning("shutdown bound reached during the replay after a broker loss: "
                            "records that broker confirmed shortly before it was lost may "
                            "not have reached MQTT (they are in the journal and the store)")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(bound, 1.0)):
                await self.link.close((self.topics.gateway_status, Status.OFFLINE.encode()))
        for task in core:
            task.cancel()
        await _settle(core, bound, "task")

    async def intake_open(self) -> None:
        """Wait until every device that reports on its own can reach the gateway: the
        broker connected with the device topics subscribed, the HTTP push receiver
        listening, the GB/T 26875.3 port open, every serial port open (opening a port
        discards what waited in it)."""
        await self.link.session()
        if self.bulk_link is not None:
            await self.bulk_link.session()
        for driver in self.drivers:
            # a receiver says it listens (`ready`), a serial driver that its port is open
            # (`connected`); each is imported only when configured, so asked by name
            for name in ("ready", "connected"):
                opened = getattr(driver, name, None)
                if isinstance(opened, asyncio.Event):
                    await opened.wait()

    # -- wiring -------------------------------------------------------------------------

    def _heartbeat(self, device: AnyDevice) -> float:
        """The device's own interval; else its profile's; polled devices: the poll interval."""
        if device.heartbeat_s:
            return device.heartbeat_s
        if isinstance(device, ModbusDevice):
            return device.modbus.poll_s
        if isinstance(device, DahuaDevice):
            return device.dahua.heartbeat_s  # the stream's own heartbeat
        if device.profile is not None:
            return self.profiles.get(device.profile).heartbeat_s
        return 0.0

    async def _journal_status_changes(self) -> None:
        """Offline and back-online become events, in the journal like any other.

        The devices last journalled offline are kept in the journal's state, so a device
        that was offline when the gateway stopped is journalled back online when it
        reappears after a restart.
        """
        stored = await self.journal.read_state(OFFLINE_KEY)
        offline: set[str] = set(json.loads(stored)) if stored else set()
        transitions = self.board.transitions
        while True:
            # every change waiting in one commit: when a bridge or a sweep takes hundreds
            # of devices offline at once, the list of them is written once, not per device
            waiting = [await transitions.get()]
            while not transitions.empty():
                waiting.append(transitions.get_nowait())
            after, events, ts = set(offline), [], self.clock.now_ms()
            for device, kind, old, new in waiting:
                if old is None and new is Status.ONLINE and device not in after:
                    continue  # a device found at start is news to nobody
                after = after | {device} if new is Status.OFFLINE else after - {device}
                events.append(make_event(kind, device, new.value, ts))
            if not events:
                continue
            # the board does not tell a change twice: refused by a write error, the
            # changes are handed over again until they are journalled
            if await keep_handing(functools.partial(self._commit_status, events, after),
                                  events, self.clock, self.counters):
                offline = after

    async def _commit_status(self, events: list[DeviceEvent], offline: set[str]) -> bool:
        """Whether the status events and the offline list were journalled; False when the
        quota refused them (its documented, counted loss)."""
        try:
            await self.journal.commit(
                events, state={OFFLINE_KEY: json.dumps(sorted(offline)).encode()})
        except JournalFullError as exc:
            self.counters.inc("dropped", len(events), cls="event", reason=exc.reason)
            return False
        return True

    async def _prune(self) -> None:
        """Delete what every consumer has passed; SQLite reuses the freed pages."""
        audit_pruned_at: float | None = None
        while True:
            await self.clock.sleep(self.config.journal.prune_interval_s)
            window_ms = round(max([self.config.broker.redelivery_window_s]
                                  + [p.redelivery_window_s for p in
                                     (self.config.onenet, self.config.ctwing) if p]) * 1000)
            gone = await self.journal.prune(["mqtt", "store", "rules", "notify",
                                             *(u.consumer for u in self.upstreams)],
                                            keep_from=min(self.mqtt_sink.replay_floor,
                                                          self.store_sink.replay_floor),
                                            receipts_before=self.clock.now_ms() - window_ms)
            if gone:
                self.counters.inc("journal_pruned", gone)
                log.debug("pruned %d journal record(s)", gone)
            now = self.clock.monotonic()
            if audit_pruned_at is None or now - audit_pruned_at >= AUDIT_PRUNE_S:
                audit_pruned_at = now
                await self._prune_audit()

    async def _watch_overload(self) -> None:
        """Journal the gateway's own `overloaded` and `caught_up` events: the built-in rule
        gateway.overloaded turns them into an alert, published and escalated like any."""
        firing = any(a.rule == OVERLOADED and a.device == GATEWAY_DEVICE
                     for a in self.rules.active())  # left firing by the previous run
        watch = OverloadWatch.from_limits(self.config.limits, firing)
        while True:
            await self.clock.sleep(OVERLOAD_SAMPLE_S)
            turn = watch.observe(self.clock.monotonic(), self.intake_backlog())
            if turn is None:
                continue
            kind = "overloaded" if turn.overloaded else "caught_up"
            event = make_event(DeviceKind.GATEWAY, GATEWAY_DEVICE, kind, self.clock.now_ms(),
                               {"lane": turn.lane, "behind_s": turn.behind_s,
                                "messages": turn.messages})
            if turn.overloaded:
                log.warning("the gateway is behind: its %s lane by %.1f s (%d message(s) "
                            "waiting)", turn.lane, turn.behind_s, turn.messages)
            else:
                log.info("the gateway has caught up")
            try:
                await self.journal.commit([event])
            except (JournalFullError, NotJournalledError) as exc:
                self.counters.inc("dropped", cls=event.cls.value, reason=exc.reason)
                watch.overloaded = not turn.overloaded  # said again at the next sample

    async def _watch_clock(self) -> None:
        """Report whether the system clock can be trusted, and say so when that changes.

        Records carry the system time: on a Pi that booted without network, that time may
        be far off until NTP has synchronised.
        """
        while True:
            try:
                state = await asyncio.to_thread(self._clock_probe)
            except OSError as exc:  # not Linux: the state is unknown, and stays so
                log.info("cannot tell whether the clock is synchronised: %s", exc)
                return
            trusted = trustworthy(state)
            if trusted != self.clock_synchronised:
                if trusted:
                    log.info("system clock synchronised (%s)", state.now.isoformat())
                else:
                    log.warning("system clock NOT synchronised (it says %s): timestamps of "
                                "readings, events and alerts may be wrong until NTP syncs; "
                                "see `scgw doctor`", state.now.isoformat())
                self.clock_synchronised = trusted
            await self.clock.sleep(CLOCK_CHECK_S)

    def local_sink_cursors(self) -> dict[str, int]:
        return {"mqtt": self.mqtt_sink.cursor, "store": self.store_sink.cursor,
                "notify": self.notify_sink.cursor}

    def sink_cursors(self) -> dict[str, int]:
        """Every sink's cursor, upstreams as `upstream:NAME`."""
        return {**self.local_sink_cursors(), **{u.consumer: u.cursor for u in self.upstreams}}

    def upstream_states(self) -> list[dict[str, Any]]:
        """Each upstream's state (idle, up, down), why it is down, its backlog."""
        return [{"name": u.name, "state": u.state.value, "reason": u.down_reason,
                 "backlog": max(self.journal.last_seq - u.cursor, 0)} for u in self.upstreams]

    async def _prune_audit(self) -> None:
        """The audit of what left for upstreams is kept for sharing.audit_keep_days."""
        keep_ms = round(self.config.sharing.audit_keep_days * 86_400_000)
        gone = await self.journal.prune_shared(self.clock.now_ms() - keep_ms)
        if gone:
            self.counters.inc("audit_pruned", gone)

    def _downstream_behind(self) -> bool:
        """Whether the rules, the MQTT sink or a working store are too far behind for the
        bulk session to read more (called per message read there: a few subtractions)."""
        return (self.journal.last_seq - self.mqtt_sink.published > HOLD_RECORDS
                or self.telemetry.pending(RULES) > HOLD_READINGS
                or self._telemetry_behind())

    def _telemetry_behind(self) -> bool:
        """Readings taken faster than a sink that works passes them on: beyond half the
        telemetry ring, more would push out readings not yet stored (a QoS 1 reading the
        broker was told is received). A store that is down does not hold the readings:
        the rules must go on seeing them; the ring then drops the oldest, counted."""
        if len(self.telemetry) <= self._telemetry_hold:
            return False
        return ((self.telemetry.pending(STORE) > self._telemetry_hold
                 and not self.store_sink.failing)
                or (self.telemetry.pending(MQTT) > self._telemetry_hold
                    and self.link.connected))

    def _push_behind(self) -> bool:
        """Whether the HTTP push port should hold the pushes of devices that are not alarm
        devices: the rules are too far behind, or the MQTT sink is while the broker is there
        (without it the alerts wait for the broker, not for the pushes, and the journal
        goes on taking what the devices push)."""
        return (self.telemetry.pending(RULES) > HOLD_READINGS
                or (self.link.connected
                    and self.journal.last_seq - self.mqtt_sink.published > HOLD_RECORDS)
                or self._telemetry_behind())

    @property
    def connected(self) -> bool:
        """Every broker session is up and subscribed (the bulk one too, when there is one)."""
        return self.link.connected and (self.bulk_link is None or self.bulk_link.connected)

    def intake_backlog(self) -> dict[str, dict[str, float]]:
        """Per broker session: messages read and not yet handled, their bytes, the oldest's
        age; and the readings waiting for the rules."""
        lanes = {"devices": self.link, "bulk": self.bulk_link}
        out: dict[str, dict[str, float]] = {}
        for lane, link in lanes.items():
            if link is not None:
                b = link.backlog()
                out[lane] = {"messages": b.messages, "bytes": b.bytes, "oldest_s": b.oldest_s}
        oldest = self.telemetry.oldest_pending_ts(RULES)
        out["readings"] = {
            "messages": self.telemetry.pending(RULES), "bytes": 0,
            "oldest_s": 0.0 if oldest is None else max((self.clock.now_ms() - oldest) / 1000, 0)}
        return out

    def snapshot(self) -> StatusSnapshot:
        return StatusSnapshot(
            ts=self.clock.now_ms(),
            site=self.config.site,
            broker_connected=self.connected,
            journal_last_seq=self.journal.last_seq,
            cursors=self.sink_cursors(),
            devices=[
                {"id": d.id, "kind": d.kind.value, "transport": d.transport,
                 "status": (self.board.get(d.id) or "unknown")}
                for d in self.config.devices
            ],
            active_alerts=len(self.rules.active()),
            counters=self.counters.snapshot(),
            pid=os.getpid(),
            clock_synchronised=self.clock_synchronised,
            intake=self.intake_backlog(),
            upstreams={u.name: u.state.value + (f": {u.down_reason}" if u.down_reason else "")
                       for u in self.upstreams},
            alerts=[{"rule": a.rule, "device": a.device, "state": a.state.value,
                     "severity": a.severity.value, "since": a.since, "message": a.message}
                    for a in self.rules.active()],
        )

    async def ack(self, rule: str, device: str, by: str, *, reason: str | None = None) -> None:
        """Journal an acknowledgement (with a reason: a resolution by hand); the rules apply
        it in order with everything else."""
        ts = self.clock.now_ms()
        await self.journal.append(AckCommand(id=new_id(ts), ts=ts, rule=rule, device=device,
                                             by=by, reason=reason))

    def _feedback(self, alert: Alert) -> None:
        if self.alert_log is not None:
            self.alert_log.transition(alert)
        button = self.buttons.get(alert.device)
        if button is not None:
            button.on_alert(alert)

    def _ingress(self, link: MqttLink, devices: list[MqttDevice], prefix: str,
                 bridges: Zigbee2MqttBridges | None) -> MqttIngress:
        """The MQTT devices read on `link`'s session (`prefix`: its receipts' keys; the
        zigbee2mqtt bridges' own topics on one session only)."""
        ingress = MqttIngress(
            devices, self._json_mapping, self, self.clock, self.counters, self.pseudonymise,
            receipts=self.journal, redelivery_window_s=self.config.broker.redelivery_window_s,
            max_payload_bytes=self.config.broker.max_payload_bytes, receipt_prefix=prefix,
            rate_hz=self.config.limits.device_rate_hz,
            burst_s=self.config.limits.device_burst_s,
            availability_of=functools.partial(availability_topic, profiles=self.profiles),
            bridges=bridges)
        link.on_connect(ingress.connected)
        for topic in ingress.topics:
            link.subscribe(topic, ingress.handle)
        return ingress

    def _json_mapping(self, device: MqttDevice) -> JsonMap:
        if device.profile is None:
            # devices mapped alike share one (frozen) mapping, as a profile's devices do:
            # a compound's many sensors of one model would otherwise hold a copy each
            key = device.mqtt.model_dump_json(exclude={"topic"})
            shared = self._inline_mappings.get(key)
            if shared is None:
                shared = self._inline_mappings[key] = inline_mapping(device)
            return shared
        mapping = self.profiles.get(device.profile).mapping
        assert isinstance(mapping, JsonMap)
        return mapping

    def _bridged(self, device: MqttDevice) -> BridgedDevice:
        profile = self.profiles.get(device.profile) if device.profile is not None else None
        return BridgedDevice(device.id, device.mqtt.topic,
                             profile.models if profile is not None else (),
                             profile.name if profile is not None else None)

    def _location(self, device_id: str) -> Location | None:
        # called for every point written: a dict, not a scan of the device list
        return self._locations.get(device_id)


async def _settle(tasks: list[asyncio.Task[None]], bound: float, what: str) -> None:
    """Wait for cancelled tasks, naming any that is slow to stop."""
    if not tasks:
        return
    _, slow = await asyncio.wait(tasks, timeout=bound)
    for task in slow:
        log.warning("%s %s is slow to stop", what, task.get_name())
        # a library that swallowed the stop (wait_for on 3.11 does when an answer arrives
        # with it) would otherwise keep the gateway running: ask again
        task.cancel()


def _pseudonymiser(config: GatewayConfig) -> Pseudonymiser | None:
    if config.pseudonym_key_env is None:
        return None
    return Pseudonymiser(os.environ[config.pseudonym_key_env].encode())


class GpioUnavailableError(Exception):
    """GPIO devices are configured but no GPIO pin library can be loaded."""


def _pin_factory(config: GatewayConfig) -> Any:
    if not any(isinstance(d, GpioDevice) for d in config.devices):
        return None
    if config.gpio_factory == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    import warnings

    from gpiozero.devices import Device
    from gpiozero.exc import BadPinFactory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one clear message below, not one per library
            return Device._default_pin_factory()
    except (BadPinFactory, ImportError) as exc:  # ImportError: GPIOZERO_PIN_FACTORY's library
        raise GpioUnavailableError(
            "GPIO devices are configured but no GPIO library could be loaded: on a Raspberry "
            "Pi install python3-lgpio and create the venv with --system-site-packages; "
            'to simulate the pins, set gpio_factory = "mock"') from exc

