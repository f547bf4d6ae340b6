"""Starts ThingsBoard's IoT gateway with its update check switched off.

Run by the peer's own Python (bench/.peers/tb-venv), not the benchmark's: it imports only
thingsboard_gateway. The gateway posts its version, platform and an instance id to its
vendor's update server at start and every hour, with no setting to stop it; the check is
replaced by a no-op before the gateway starts, so nothing leaves the machine.

    python tb_launch.py CONFIG_DIR/tb_gateway.json
"""

import sys

from thingsboard_gateway.tb_utility import tb_updater  # type: ignore[import-not-found]


def _no_update_check(self: object) -> None:
    return None


tb_updater.TBUpdater.check_for_new_version = _no_update_check

from thingsboard_gateway.gateway.tb_gateway_service import (  # type: ignore[import-not-found]  # noqa: E402
    TBGatewayService,
)

TBGatewayService(sys.argv[1])
