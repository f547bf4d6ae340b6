"""Is the configuration valid, and is every environment variable it names set?"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config_file import parse_config
from gateway.core.config import GatewayConfig
from gateway.core.problems import ConfigError, Problem, read_toml
from gateway.ops.doctor.finding import Finding, fail, ok

CHECK = "config"
ENV_CHECK = "environment"
RULES_CHECK = "rules"


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The configuration, if it could be read, and what was found about it."""

    config: GatewayConfig | None
    findings: list[Finding]


class _AssumeSet(Mapping[str, str]):
    """The environment, with every variable it lacks present: what the config would be
    once the missing secrets are provided."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, key: str) -> str:
        return self._env.get(key, "x" * 32)  # long enough for pseudonym_key_env

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def read_config(file: Path, env: Mapping[str, str]) -> ConfigState:
    """Blocking: reads the config file, its profiles, rule files and contacts."""
    try:
        raw = read_toml(file)
    except ConfigError as exc:
        return _invalid_state(exc)
    try:
        config = parse_config(raw, file, env)
    except ConfigError as exc:
        first = exc
    else:
        return ConfigState(config, [_valid(file, config), *_rule_findings(config)])
    try:
        # a secret missing from this shell must not hide what else is wrong or right
        config = parse_config(raw, file, _AssumeSet(env))
    except ConfigError:
        return _invalid_state(first)
    # the only difference between the two passes is the environment
    unset = [_unset(p.path, _env_name(config, p.path)) for p in first.problems]
    return ConfigState(config, [_valid(file, config), *unset, *_rule_findings(config)])


def _invalid_state(exc: ConfigError) -> ConfigState:
    return ConfigState(None, [_invalid(exc.file, p) for p in exc.problems])


def _valid(file: Path, config: GatewayConfig) -> Finding:
    return ok(CHECK, str(file), f"site {config.site}, {len(config.devices)} device(s), "
              f"{len(config.buses)} bus(es)")


def _invalid(file: Path, problem: Problem) -> Finding:
    if problem.path == "<file>":
        fix = "give the gateway's config file with --config"
    elif problem.path == "<toml>":
        fix = f"correct the TOML syntax in {file}"
    else:
        fix = f"correct {problem.path} in {file}"
    subject = f"{file}: {problem.path}"
    if problem.device:
        subject += f" (device {problem.device})"
    return fail(CHECK, subject, problem.message, fix)


def _env_name(config: GatewayConfig, key: str) -> str:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return str(value)


def _unset(key: str, name: str) -> Finding:
    return fail(ENV_CHECK, f"{name} ({key})", f"{name} is not set in this environment",
                f"set {name} in the gateway's environment (the service's EnvironmentFile) "
                "and in the shell that runs doctor")


def _rule_findings(config: GatewayConfig) -> list[Finding]:
    from rules.loader import rule_sources
    from rules.tooling import check

    sources = rule_sources(config)
    subject = ", ".join(map(str, sources))
    problems = check(sources, config.contacts_file)
    if not problems:
        return [ok(RULES_CHECK, subject, "rules and contacts are valid")]
    return [fail(RULES_CHECK, f"{p.file}:{p.line}", f"rule {p.rule}: {p.message}" if p.rule
                 else p.message, f"correct {p.file} line {p.line}; `scgw rules check` lists "
                 "every problem") for p in problems]
