"""The systemd unit leaves the push port's connections far from the file descriptor limit."""

from __future__ import annotations

import configparser
from pathlib import Path

from gateway.core.config import HttpServerConfig

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "scgw.service"


def test_file_descriptor_limit_leaves_room_beyond_the_push_connections() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    limit = int(unit["Service"]["LimitNOFILE"])
    # each push connection is one descriptor; the rest of the gateway needs its own
    assert limit >= 4 * HttpServerConfig().max_connections
