"""The unit's MemoryDenyWriteExecute=yes does not break the gateway.

systemd enforces it with a seccomp filter; Linux 6.3+ offers the same rule to any process
(prctl PR_SET_MDWE: no memory both writable and executable, none made executable later),
inherited across exec. The gateway runs under it here, with a simulated GPIO button and an
MQTT device, until it is online and then stops cleanly.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
from pathlib import Path

import pytest

from gateway.ops.private_servers import Mosquitto
from tests.helpers import Watcher, unique_site

# Turn the protection on (PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1), prove it holds,
# then become the gateway.
_UNDER_MDWE = """
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_MDWE): errno {ctypes.get_errno()}")
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("writable and executable memory was allowed: the protection is not on")
os.execv(sys.argv[1], sys.argv[1:])
"""


def _kernel_has_mdwe() -> bool:
    # PR_GET_MDWE (66) answers 0 or more on kernels that know the setting
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(66, 0, 0, 0, 0)) >= 0


@pytest.mark.skipif(not _kernel_has_mdwe(), reason="the kernel has no PR_SET_MDWE (< 6.3)")
async def test_the_gateway_runs_without_writable_executable_memory(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = unique_site("mdwe")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
site = "{site}"
shutdown_timeout_s = 2.0
gpio_factory = "mock"
[broker]
port = {mosquitto.port}
[store]
url = "http://127.0.0.1:9"
[journal]
path = "{tmp_path / 'journal.db'}"
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
gpio = {{ pin = 17, led_pin = 27 }}
[[devices]]
id = "sos-1"
kind = "elder_button"
transport = "mqtt"
mqtt = {{ topic = "devices/{site}/sos-1", event_key = "action", events = {{ single = "press" }} }}
""")
    async with Watcher(mosquitto.port, f"sc/{site}/#", "mdwe") as watcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _UNDER_MDWE, sys.executable, "-m", "gateway.ops.cli", "run",
            "--config", str(config), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        try:
            await watcher.next(lambda s: s.topic.endswith("gateway/status")
                               and s.payload == b"online", timeout=30)
            await watcher.publish(f"devices/{site}/sos-1", b'{"action": "single"}')
            event = await watcher.next(lambda s: s.topic.endswith("sos-1/event"), timeout=30)
            assert b'"press"' in event.payload
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = (await proc.stdout.read()).decode() if proc.stdout else ""
    assert "Traceback" not in output, output
