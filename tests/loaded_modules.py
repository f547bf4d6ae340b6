"""`python -m tests.loaded_modules DIR BROKER_PORT TARGET`: run a gateway with one wireless
elder button whose family is reached at TARGET, press the button, and once the family's
notification went out (an mqtt:// TARGET) or apprise is loaded (any other), stop and print
(JSON) the top-level packages loaded.

Run in a process of its own: a test process has loaded everything its other tests used.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from gateway.supervisor import Gateway
from tests.helpers import Watcher, eventually, make_config, running, sos_mqtt

TOPIC = "vendor/sos/1"
GROUPS = ("family", "duty_office", "clinic", "property_manager", "fire_warden", "maintenance")


async def _run(where: Path, port: int, target: str) -> None:
    contacts = where / "contacts.yaml"
    contacts.write_text("groups:\n" + "".join(f'  {group}: ["{target}"]\n' for group in GROUPS),
                        encoding="utf-8")
    config = make_config(where, site="mods", broker_port=port, devices=[sos_mqtt("sos-1", TOPIC)],
                         contacts_file=str(contacts), shutdown_timeout_s=0.3)
    async with running(Gateway(config)) as gateway, Watcher(port, "sc/mods/#") as family:
        await eventually(lambda: gateway.connected, what="connected")
        await family.publish(TOPIC, b'{"action": "single"}')
        if target.startswith("mqtt://"):
            await family.next(lambda seen: seen.topic == target.removeprefix("mqtt://"))
        else:
            await eventually(lambda: "apprise" in sys.modules, what="apprise loaded")
    # asyncio.run waits for the threads of the loop's executor before it returns


def main() -> None:
    asyncio.run(_run(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))


if __name__ == "__main__":
    main()
