"""A platform that is down shows on the duty office's board and in `scgw status`, with the
records waiting for it; the local bus is served meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.ops.private_servers import Mosquitto, free_port
from gateway.supervisor import Gateway
from tests.console.rig import add_user, base_url, client, console_config, login
from tests.helpers import eventually, running, unique_site


async def test_a_platform_down_is_on_the_board_and_in_the_status(
        tmp_path: Path, mosquitto: Mosquitto, platform_pki: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCGW_TEST_STATUS_SECRET", "a-webhook-secret-of-16-bytes")
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: faults\n    select: {records: [event]}\n"
                      "    fields: [ts, kind]\n")
    config = console_config(
        tmp_path, site=unique_site("up-status"), broker_port=mosquitto.port,
        store_url="http://127.0.0.1:9", upstreams=[{
            "name": "district", "kind": "webhook", "policy": str(policy),
            "url": f"https://localhost:{free_port()}/nobody-listens",
            "ca_file": str(platform_pki["ca"]), "secret_env": "SCGW_TEST_STATUS_SECRET",
            "retry_min_s": 0.05, "retry_max_s": 0.2}])
    add_user(config, "wang")
    async with running(Gateway(config)) as gateway:
        # a press, as the button's driver hands it over: an event for the platform
        await gateway.event(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press",
                                       gateway.clock.now_ms()))
        await eventually(lambda: gateway.upstreams[0].state.value == "down",
                         what="the platform found down")
        await eventually(lambda: gateway.mqtt_sink.cursor == gateway.journal.last_seq,
                         what="the local bus served")
        async with client() as session:
            assert await login(session, base_url(config), "wang") == 303
            async with session.get(base_url(config) + "/api/board") as response:
                board = await response.json()
        snapshot = gateway.snapshot()
    (state,) = board["upstreams"]
    assert state["name"] == "district"
    assert state["state"] == "down"
    assert state["backlog"] >= 1
    assert "unreachable" in state["reason"]
    assert snapshot.upstreams["district"].startswith("down: unreachable")
    assert snapshot.cursors["upstream:district"] < snapshot.journal_last_seq
