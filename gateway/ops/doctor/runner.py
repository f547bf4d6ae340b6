"""Run every check of `scgw doctor`: concurrently, each bounded, none able to crash the rest."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.core.config import GatewayConfig
from gateway.ops.doctor import broker, clock, config_check, disk, gpio, serial_ports, store
from gateway.ops.doctor.finding import Finding, Status, fail, skip


@dataclass(frozen=True, slots=True)
class _Check:
    check: str
    subject: str
    run: Callable[[], Awaitable[Finding | list[Finding]]]
    slow_fix: str  # what to look at when it does not finish in time


async def diagnose(
    file: Path,
    *,
    env: Mapping[str, str] | None = None,
    clock_probe: clock.ClockProbe | None = None,
    timeout_s: float = 5.0,
) -> list[Finding]:
    """Every finding about the gateway configured by `file`, in a stable order.

    `clock_probe` reads the clock's state (default: the kernel's, through adjtimex).
    """
    env = os.environ if env is None else env
    clock_probe = clock_probe or clock.read_kernel_clock
    try:
        state = await asyncio.to_thread(config_check.read_config, file, env)
    except Exception as exc:  # a bug in one check must not hide the others
        state = config_check.ConfigState(None, [_crashed(config_check.CHECK, str(file), exc)])
    checks = _checks(state.config, env, clock_probe, timeout_s)
    found = [f for each in await asyncio.gather(*(_run(c, timeout_s) for c in checks))
             for f in each]
    if state.config is None:
        why = "needs a valid configuration"
        skipped = [skip(name, "-", why) for name in (config_check.RULES_CHECK, broker.CHECK,
                                                     store.CHECK, serial_ports.CHECK,
                                                     gpio.CHECK, disk.CHECK)]
        return [*state.findings, *skipped, *found]
    return [*state.findings, *found]


def failed(findings: list[Finding]) -> bool:
    """Whether anything failed: what `scgw doctor`'s exit status says."""
    return any(f.status is Status.FAIL for f in findings)


def _checks(config: GatewayConfig | None, env: Mapping[str, str],
            clock_probe: clock.ClockProbe, timeout_s: float) -> list[_Check]:
    clock_check = _Check(clock.CHECK, "system clock",
                         functools.partial(clock.check_clock, clock_probe),
                         "adjtimex(2) did not answer")
    if config is None:
        return [clock_check]
    b, s = config.broker, config.store
    checks = [
        _Check(broker.CHECK, f"{b.host}:{b.port}",
               functools.partial(broker.check_broker, b, config.client_id, env, timeout_s),
               f"check the network path to {b.host} and that port {b.port} is the broker's; "
               "a TLS listener without [broker.tls], or the reverse, also hangs"),
        _Check(store.CHECK, s.url, functools.partial(store.check_store, s, config.site, env),
               "store.url does not answer: check the network path and the store's load"),
    ]
    ports = serial_ports.serial_ports(config)
    checks += [_Check(serial_ports.CHECK, port.subject,
                      functools.partial(serial_ports.check_serial_port, port),
                      "opening the port hangs: replug the adapter; dmesg shows why")
               for port in ports]
    if not ports:
        checks.append(_Check(serial_ports.CHECK, "-", _no_serial_ports, ""))
    checks += [
        _Check(gpio.CHECK, "pins", functools.partial(gpio.check_gpio, config),
               "the pin library hangs: dmesg shows GPIO driver errors"),
        clock_check,
        _Check(disk.CHECK, str(config.journal.path),
               functools.partial(disk.check_journal_disk, config.journal),
               "the journal's file system hangs (a dead network or USB disk?)"),
    ]
    return checks


async def _no_serial_ports() -> Finding:
    return skip(serial_ports.CHECK, "-", "no serial ports configured (Modbus TCP has none)")


async def _run(check: _Check, timeout_s: float) -> list[Finding]:
    try:
        async with asyncio.timeout(timeout_s):
            found = await check.run()
    except TimeoutError:
        return [fail(check.check, check.subject, f"no answer within {timeout_s:g} s",
                     check.slow_fix)]
    except Exception as exc:  # a bug in one check must not hide the others
        return [_crashed(check.check, check.subject, exc)]
    return found if isinstance(found, list) else [found]


def _crashed(check: str, subject: str, exc: Exception) -> Finding:
    return fail(check, subject, f"the check itself failed: {type(exc).__name__}: {exc}",
                "fix what the message names; if it makes no sense, report it as a bug in "
                "scgw doctor")
