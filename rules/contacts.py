"""Who escalation steps reach: contact groups, and per-device groups such as an elder's family.

A contacts file stays on the gateway (residents' personal data stays in the compound):

    groups:
      duty_office: ["mqtt://sc/c1/notify/duty-office"]
      clinic: ["mailto://clinic@example.org"]
    devices:
      elder-3-1-502:
        family: ["tgram://bot-token/chat-id"]

A target is an apprise URL, or mqtt://topic for the gateway's own broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rules.problems import Report, RuleError, RuleProblem
from rules.source import Node, read_yaml

_TARGET = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


@dataclass(frozen=True, slots=True)
class Contacts:
    """Targets per group, with per-device groups taking precedence over site-wide ones."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    devices: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def targets(self, group: str, devices: Iterable[str]) -> tuple[str, ...]:
        """Where `group` is reached for an alert about `devices`; empty when nobody is set."""
        own: list[str] = []
        for device in devices:
            for target in self.devices.get(device, {}).get(group, ()):
                if target not in own:
                    own.append(target)
        return tuple(own) if own else self.groups.get(group, ())

    def knows(self, group: str) -> bool:
        return group in self.groups or any(group in d for d in self.devices.values())

    def every_target(self) -> set[str]:
        """Every target the file names, for any group or device."""
        out = {target for targets in self.groups.values() for target in targets}
        for groups in self.devices.values():
            out.update(target for targets in groups.values() for target in targets)
        return out


def load_contacts(path: Path) -> Contacts:
    """Read a contacts file; raise RuleError listing every problem."""
    contacts, problems = read_contacts(path)
    if problems or contacts is None:
        raise RuleError(problems)
    return contacts


def read_contacts(path: Path) -> tuple[Contacts | None, list[RuleProblem]]:
    root, problems = read_yaml(path)
    if root is None:
        return (Contacts() if not problems else None), problems

    def report(line: int, message: str) -> None:
        problems.append(RuleProblem(path, line, None, message))

    if not isinstance(root.value, dict):
        report(root.line, "a contacts file is a mapping with groups: and devices:")
        return None, problems
    for key in root.value:
        if key not in ("groups", "devices"):
            report(root.key_lines[key], f"unknown key {key!r} (known: groups, devices)")
    groups = _group_table(root.value.get("groups"), report)
    devices: dict[str, Mapping[str, tuple[str, ...]]] = {}
    device_node = root.value.get("devices")
    if device_node is not None:
        if not isinstance(device_node.value, dict):
            report(device_node.line, "devices: maps device ids to their groups")
        else:
            for device, node in device_node.value.items():
                devices[device] = _group_table(node, report)
    return Contacts(groups, devices), problems


def _group_table(node: Node | None, report: Report) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        report(node.line, "groups map a group name to a list of targets")
        return {}
    table: dict[str, tuple[str, ...]] = {}
    for group, targets in node.value.items():
        items = targets.value if isinstance(targets.value, list) else [targets]
        good: list[str] = []
        for item in items:
            if isinstance(item.value, str) and _TARGET.match(item.value):
                good.append(item.value)
            else:
                report(item.line, f"group {group}: {item.value!r} is not a target URL "
                                  "(an apprise URL such as mailto://..., or mqtt://topic)")
        table[group] = tuple(good)
    return table

