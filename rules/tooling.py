"""Rule tooling for the command line: check a rules directory, replay recorded records.

    check(Path("rules/packs"))                         -> problems, empty when all is well
    test(Path("rules/packs"), Path("fire.jsonl"), contacts=Path("contacts.yaml"))
                                                       (test is another name of replay)
                                                       -> printable transition lines

A replay file is JSON Lines: records encoded with gateway.core.model.encode (readings, events,
acks), and between them `{"tick": "90s"}` to let simulated time pass, `{"directory":
{"smoke-3-1": {"kind": "smoke", "location": {"building": "3"}}}}` to place devices, and
lines starting with # as comments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from gateway.core.config import Location
from gateway.core.model import AckCommand, Alert, DeviceEvent, DeviceKind, Reading, decode
from gateway.core.operator_files import UnreadableFile, read_operator_file
from rules.contacts import Contacts, read_contacts
from rules.directory import DeviceDirectory, DeviceInfo
from rules.engine import RuleEngine
from rules.loader import load_pack, read_pack
from rules.notify import Notify, NotifyReason
from rules.problems import RuleError, RuleProblem
from rules.source import parse_duration


def check(path: Path | Sequence[Path], contacts: Path | None = None) -> list[RuleProblem]:
    """Every problem in the rule files under `path` (and in `contacts`, when given)."""
    problems: list[RuleProblem] = []
    book: Contacts | None = None
    if contacts is not None:
        book, contact_problems = read_contacts(contacts)
        problems += contact_problems
    _pack, rule_problems = read_pack(path, book)
    return problems + rule_problems


def replay(
    path: Path | Sequence[Path],
    events: Path,
    contacts: Path | None = None,
    directory: DeviceDirectory | None = None,
    *,
    restarts: bool = False,
) -> list[str]:
    """Replay `events` through the rules under `path`; one line per transition.

    With `restarts`, the engine is snapshotted and restored into a new one before every
    line, as if the gateway restarted there: the output must not change.
    Raises RuleError for rules, contacts or replay lines that cannot be read.
    """
    book = Contacts()
    if contacts is not None:
        found, problems = read_contacts(contacts)
        if problems or found is None:
            raise RuleError(problems)
        book = found
    pack = load_pack(path)
    devices: dict[str, DeviceInfo] = dict(directory or {})
    replay = _Replay(events)
    engine: RuleEngine | None = None
    clock: int | None = None
    lines: list[str] = []

    def emit(alerts: list[Alert], target: RuleEngine) -> None:
        lines.extend(_alert_line(a) for a in alerts)
        lines.extend(_notify_line(n) for n in target.take_notifications())

    def run_until(target: int, running: RuleEngine) -> int:
        while (due := running.next_deadline()) is not None and due <= target:
            emit(running.on_time(due), running)
        emit(running.on_time(target), running)
        return target

    for number, item in replay.items():
        if isinstance(item, dict):
            if engine is not None:
                raise replay.error(number, "place devices before the first record or tick")
            devices.update(item)
            continue
        if engine is None:
            engine = RuleEngine(pack, devices, book)
        elif restarts:
            saved = engine.snapshot()
            engine = RuleEngine(pack, devices, book)
            engine.restore(saved)
        if isinstance(item, int):
            start = clock if clock is not None else _DEFAULT_START
            clock = run_until(start + item, engine)
            continue
        clock = run_until(item.ts if clock is None else max(clock, item.ts), engine)
        if isinstance(item, DeviceEvent):
            emit(engine.on_event(item), engine)
        elif isinstance(item, Reading):
            emit(engine.on_reading(item), engine)
        else:
            emit(engine.on_ack(item), engine)
    return lines


# the command is `scgw rules test`; `replay` is the same function under a name test runners
# do not mistake for a test
test = replay

_DEFAULT_START = 1_767_225_600_000  # 2026-01-01T00:00:00Z, when a replay opens with a tick

Item = dict[str, DeviceInfo] | int | DeviceEvent | Reading | AckCommand


class _Replay:
    """The lines of a replay file, parsed."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            self.text = read_operator_file(file)
        except UnreadableFile as exc:
            raise RuleError([RuleProblem(file, exc.line, None, exc.message)]) from exc

    def error(self, line: int, message: str) -> RuleError:
        return RuleError([RuleProblem(self.file, line, None, message)])

    def items(self) -> list[tuple[int, Item]]:
        out: list[tuple[int, Item]] = []
        for number, raw in enumerate(self.text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            out.append((number, self._item(number, line)))
        return out

    def _item(self, number: int, line: str) -> Item:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise self.error(number, f"not JSON: {exc.msg}") from exc
        except RecursionError as exc:
            raise self.error(number, "not JSON: nested too deeply") from exc
        if isinstance(data, dict) and "tick" in data:
            try:
                return parse_duration(data["tick"])
            except ValueError as exc:
                raise self.error(number, f"tick: {exc}") from exc
        if isinstance(data, dict) and "directory" in data:
            try:
                table = msgspec.convert(data["directory"], dict[str, _Placed])
            except msgspec.ValidationError as exc:
                raise self.error(number, f"directory: {exc}") from exc
            return {device: DeviceInfo(p.kind, Location(building=p.location.building,
                                                        unit=p.location.unit,
                                                        floor=p.location.floor))
                    for device, p in table.items()}
        try:
            record = decode(line)
        except msgspec.MsgspecError as exc:
            raise self.error(number, f"not a record: {exc}") from exc
        if isinstance(record, Alert | Notify):
            raise self.error(number, "alerts and notifications are what rules produce; "
                                     "replay events, readings and acks")
        return record


class _Where(msgspec.Struct, forbid_unknown_fields=True):
    building: str | None = None
    unit: str | None = None
    floor: int | None = None


class _Placed(msgspec.Struct, forbid_unknown_fields=True):
    kind: DeviceKind
    location: _Where = msgspec.field(default_factory=_Where)


def _time(ts: int) -> str:
    moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{ts % 1000:03d}"


def _alert_line(alert: Alert) -> str:
    by = f" by {alert.by}" if alert.by else ""
    return (f"{_time(alert.ts)} {alert.state.upper():<12} {alert.rule} {alert.device} "
            f"[{alert.severity}]{by} {alert.message}")


def _notify_line(note: Notify) -> str:
    what = "resolved" if note.reason is NotifyReason.RESOLVED else \
        f"step {note.step}, round {note.round}"
    return (f"{_time(note.ts)} {'NOTIFY':<12} {note.rule} {note.device} {note.group} ({what}) "
            f"-> {', '.join(note.targets) or 'nobody (no contacts)'}")
