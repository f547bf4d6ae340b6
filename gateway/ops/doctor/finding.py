"""What one check of `scgw doctor` found, and what to do about it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but something will go wrong later or under load
    FAIL = "fail"  # the gateway cannot do its job until this is fixed
    SKIP = "skip"  # not applicable, or another failure keeps it from being checked


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One line of the report: `check` is the kind of check, `subject` what it looked at."""

    check: str
    subject: str
    status: Status
    found: str
    fix: str | None = None


def ok(check: str, subject: str, found: str) -> Finding:
    return Finding(check=check, subject=subject, status=Status.OK, found=found)


def warn(check: str, subject: str, found: str, fix: str) -> Finding:
    return Finding(check=check, subject=subject, status=Status.WARN, found=found, fix=fix)


def fail(check: str, subject: str, found: str, fix: str) -> Finding:
    return Finding(check=check, subject=subject, status=Status.FAIL, found=found, fix=fix)


def skip(check: str, subject: str, why: str) -> Finding:
    return Finding(check=check, subject=subject, status=Status.SKIP, found=why)
