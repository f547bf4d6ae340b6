"""A small file system of its own (tmpfs) that a test can fill to the last byte."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(where: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` at `where`; needs root (CAP_SYS_ADMIN) to mount."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                              str(where)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; delete the file to give them back."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as f:
        stat = os.statvfs(disk)
        with contextlib.suppress(OSError):
            os.posix_fallocate(f.fileno(), 0, stat.f_bavail * stat.f_frsize)
        block = b"\0" * 4096
        while True:
            try:
                f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    assert os.statvfs(disk).f_bavail == 0
    return filler
