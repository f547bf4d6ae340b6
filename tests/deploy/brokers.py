"""Mosquitto on the configuration files a deployment installs, moved into the test's
directories and onto free loopback ports."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.ops.private_servers import Mosquitto, find_binary, free_port


def retarget(text: str, replacements: list[tuple[str, str]]) -> str:
    """`text` with each (old, new) replaced; every `old` must be there."""
    for old, new in replacements:
        assert old in text, f"{old!r} is not in the configuration"
        text = text.replace(old, new)
    return text


class FileBroker(Mosquitto):
    """Mosquitto started on `main` (a mosquitto.conf that includes the deployment's files).

    `port` and `tls_port` are free loopback ports for the caller to write into the files.
    Started by root, it stays root unless `drop_privileges`: then it becomes the mosquitto
    user, as the packaged service does, and its files must be within that user's reach.
    """

    def __init__(self, workdir: Path, *, drop_privileges: bool = False) -> None:
        super().__init__(workdir, free_port())
        self.tls_port = free_port()
        self.main = ""
        self.drop_privileges = drop_privileges

    def command(self) -> list[str]:
        text = self.main
        if os.geteuid() == 0 and not self.drop_privileges:
            # pytest's directories are private to root; the owners and modes the mosquitto
            # user needs are checked on the installed files themselves
            text += "user root\n"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(text)
        return [find_binary("mosquitto"), "-c", str(conf)]
