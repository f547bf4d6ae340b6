"""Rule files (YAML) read into a checked RulePack; every mistake is reported with its line.

A rules directory holds *.yaml files, each a mapping with `rules:` (a list) and/or
`escalations:` (policy name -> steps). docs/rules.md describes every key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gateway.core.config import GatewayConfig
from rules.contacts import Contacts
from rules.definition import EscalationPolicy, Rule, RulePack, Step
from rules.problems import RuleError, RuleProblem
from rules.rule_reader import RuleReader
from rules.source import Node, parse_duration, parse_yaml, read_yaml

PACKS = Path(__file__).parent / "packs"
BUILTIN_FILE = Path("<built-in>")
# Rules every pack has, whatever files it was read from: what the gateway says about
# itself. A rule (or policy) of the same name in the files replaces it; without contacts
# for the policy's group, the alert is raised and published, and notifies no one.
BUILTIN_RULES = """
rules:
  - id: gateway.overloaded
    description: >
      The gateway is behind on what it takes in: a lane's oldest message not yet handled
      stayed older than limits.overloaded_after_s for limits.overloaded_hold_s. Resolved
      once every lane's backlog is gone.
    match: {kind: gateway, type: overloaded}
    condition: {field: behind_s, at_least: 0}
    clear: {type: caught_up}
    severity: major
    message: "The gateway is behind by {value:.0f} s on the messages it takes in"
    resolve_message: "The gateway has caught up with the messages it takes in"
    escalation: gateway_health

escalations:
  gateway_health:
    steps:
      - {after: 0s, notify: duty_office}
"""


def rule_sources(config: GatewayConfig) -> list[Path]:
    """The configured rule files and directories, or the default pack."""
    return list(config.rule_files) or [PACKS]


def load_pack(path: Path | Sequence[Path], contacts: Contacts | None = None, *,
              builtin: bool = False) -> RulePack:
    """Load every rule file under `path` (a directory, a file, or a list of them), with
    the built-in rules (BUILTIN_RULES) when `builtin`; raise RuleError if any has a
    mistake."""
    pack, problems = read_pack(path, contacts, builtin=builtin)
    if problems:
        raise RuleError(problems)
    return pack


def read_pack(
    path: Path | Sequence[Path], contacts: Contacts | None = None, *, builtin: bool = False
) -> tuple[RulePack, list[RuleProblem]]:
    """The rules that loaded cleanly, and every problem found."""
    problems: list[RuleProblem] = []
    files: list[Path] = []
    for place in [path] if isinstance(path, Path) else path:
        found = sorted([*place.glob("*.yaml"), *place.glob("*.yml")]) if place.is_dir() \
            else [place]
        if not found:
            problems.append(RuleProblem(place, 1, None, "no rule files (*.yaml) here"))
        files += found
    read = []
    for file in files:
        file_rules, file_policies, file_problems = _read_file(file)
        problems += file_problems
        read.append((file, file_rules, file_policies))
    if builtin:
        read.append(_builtin(read, contacts))
    pack, more = _assemble(read, contacts)
    return pack, sorted(problems + more)


def _assemble(
    read: list[tuple[Path, list[Rule], dict[str, tuple[EscalationPolicy, int]]]],
    contacts: Contacts | None,
) -> tuple[RulePack, list[RuleProblem]]:
    """One pack from the files' rules and policies, checking what spans files."""
    problems: list[RuleProblem] = []
    rules: list[Rule] = []
    policies: dict[str, tuple[EscalationPolicy, Path, int]] = {}
    seen: dict[str, Rule] = {}
    for file, file_rules, file_policies in read:
        for rule in file_rules:
            if rule.id in seen:
                first = seen[rule.id]
                problems.append(RuleProblem(file, rule.line, rule.id, f"duplicate rule id (also "
                                            f"at {first.file}:{first.line})"))
                continue
            seen[rule.id] = rule
            rules.append(rule)
        for name, (policy, line) in file_policies.items():
            if name in policies:
                _, other, other_line = policies[name]
                problems.append(RuleProblem(file, line, None, f"duplicate escalation {name!r} "
                                            f"(also at {other}:{other_line})"))
                continue
            policies[name] = (policy, file, line)
    for rule in rules:
        if rule.escalation is not None and rule.escalation not in policies:
            problems.append(RuleProblem(rule.file, rule.escalation_line, rule.id,
                                        f"no escalation policy {rule.escalation!r} (known: "
                                        f"{', '.join(sorted(policies)) or 'none'})"))
    if contacts is not None:
        for name, (policy, file, line) in policies.items():
            for step in policy.steps:
                if not contacts.knows(step.group):
                    problems.append(RuleProblem(file, line, None, f"escalation {name}: no "
                                                f"contacts for group {step.group!r}"))
    ok = [r for r in rules if r.escalation is None or r.escalation in policies]
    return RulePack(tuple(ok), {n: p for n, (p, _, _) in policies.items()}), problems


def pack_from_text(text: str, file: Path = Path("<rules>")) -> RulePack:
    """A pack from the text of one rule file; raise RuleError if it has a mistake."""
    rules, policies, problems = _read_text(text, file)
    pack, more = _assemble([(file, rules, policies)], None)
    if problems or more:
        raise RuleError(sorted(problems + more))
    return pack


def _builtin(
    read: list[tuple[Path, list[Rule], dict[str, tuple[EscalationPolicy, int]]]],
    contacts: Contacts | None,
) -> tuple[Path, list[Rule], dict[str, tuple[EscalationPolicy, int]]]:
    """The built-in rules and policies the files do not define themselves."""
    rules, policies, problems = _read_text(BUILTIN_RULES, BUILTIN_FILE)
    assert not problems, problems  # tests/rules/test_builtin_rules.py
    taken = {r.id for _, file_rules, _ in read for r in file_rules}
    named = {name for _, _, file_policies in read for name in file_policies}
    rules = [r for r in rules if r.id not in taken]
    policies = {n: p for n, p in policies.items() if n not in named}
    if contacts is not None and not all(contacts.knows(step.group) for p, _ in
                                        policies.values() for step in p.steps):
        rules = [replace(r, escalation=None) if r.escalation in policies else r for r in rules]
        policies = {}
    return BUILTIN_FILE, rules, policies


def _read_file(
    file: Path,
) -> tuple[list[Rule], dict[str, tuple[EscalationPolicy, int]], list[RuleProblem]]:
    return _read_document(*read_yaml(file), file)


def _read_text(
    text: str, file: Path
) -> tuple[list[Rule], dict[str, tuple[EscalationPolicy, int]], list[RuleProblem]]:
    return _read_document(*parse_yaml(text, file), file)


def _read_document(
    root: Node | None, problems: list[RuleProblem], file: Path
) -> tuple[list[Rule], dict[str, tuple[EscalationPolicy, int]], list[RuleProblem]]:
    if root is None:
        return [], {}, problems
    if not isinstance(root.value, dict):
        problems.append(RuleProblem(file, root.line, None,
                                    "a rule file is a mapping with rules: and escalations:"))
        return [], {}, problems
    for key in root.value:
        if key not in ("rules", "escalations"):
            problems.append(RuleProblem(file, root.key_lines[key], None,
                                        f"unknown key {key!r} (known: rules, escalations)"))
    rules: list[Rule] = []
    rule_list = root.value.get("rules")
    if rule_list is not None:
        if not isinstance(rule_list.value, list):
            problems.append(RuleProblem(file, rule_list.line, None, "rules: is a list"))
        else:
            for node in rule_list.value:
                reader = RuleReader(file, node)
                rule = reader.read()
                problems += reader.problems
                if rule is not None:
                    rules.append(rule)
    policies: dict[str, tuple[EscalationPolicy, int]] = {}
    table = root.value.get("escalations")
    if table is not None:
        if not isinstance(table.value, dict):
            problems.append(RuleProblem(file, table.line, None,
                                        "escalations: maps a policy name to its steps"))
        else:
            for name, node in table.value.items():
                policy = _read_policy(file, name, node, problems)
                if policy is not None:
                    policies[name] = (policy, table.key_lines[name])
    return rules, policies, problems


def _read_policy(
    file: Path, name: str, node: Node, problems: list[RuleProblem]
) -> EscalationPolicy | None:
    def report(line: int, message: str) -> None:
        problems.append(RuleProblem(file, line, None, f"escalation {name}: {message}"))

    if not isinstance(node.value, dict):
        report(node.line, "a policy is a mapping with steps: and repeat:")
        return None
    spec = node.value
    for key in spec:
        if key not in ("steps", "repeat"):
            report(node.key_lines[key], f"unknown key {key!r} (known: steps, repeat)")
    steps: list[Step] = []
    step_nodes = spec.get("steps")
    if step_nodes is None or not isinstance(step_nodes.value, list) or not step_nodes.value:
        report(node.line, "steps: is a list of {after, notify}, at least one")
        return None
    for item in step_nodes.value:
        if not isinstance(item.value, dict):
            report(item.line, "a step is a mapping {after: 2m, notify: duty_office}")
            continue
        for key in item.value:
            if key not in ("after", "notify"):
                report(item.key_lines[key], f"unknown key {key!r} in a step (known: after, "
                                            "notify)")
        after = item.value.get("after")
        group = item.value.get("notify")
        try:
            after_ms = parse_duration(after.value) if after is not None else 0
        except ValueError as exc:
            report(after.line if after is not None else item.line, f"after: {exc}")
            continue
        if group is None or not isinstance(group.value, str) or not group.value:
            report(item.line, "a step notifies one contact group: notify: duty_office")
            continue
        if steps and after_ms < steps[-1].after_ms:
            report(item.line, "steps must be in order of their delay")
        steps.append(Step(after_ms, group.value))
    repeat_ms: int | None = None
    repeat = spec.get("repeat")
    if repeat is not None:
        try:
            repeat_ms = parse_duration(repeat.value)
        except ValueError as exc:
            report(repeat.line, f"repeat: {exc}")
            return None
        if steps and repeat_ms <= steps[-1].after_ms:
            report(repeat.line, "repeat: must be longer than the last step's delay")
            return None
    if not steps:
        return None
    return EscalationPolicy(name=name, steps=tuple(steps), repeat_ms=repeat_ms)
