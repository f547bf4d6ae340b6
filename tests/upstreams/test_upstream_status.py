"""A platform that is down shows on the duty office's board and in `scgw status`, with the
records waiting for it; the local bus is served meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.core.kinds import make_event
from gateway.core.model import DeviceEvent, DeviceKind
from gateway.journal import Journal, SharedRow
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics, free_port
from gateway.ops.sharing_report import read_audit
from gateway.supervisor import Gateway
from tests.console.rig import add_user, base_url, client, console_config, login
from tests.helpers import eventually, running, unique_site


async def test_a_platform_down_is_on_the_board_and_in_the_status(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics,
        platform_pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCGW_TEST_STATUS_SECRET", "a-webhook-secret-of-16-bytes")
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: presses\n    select: {records: [event], type: "
                      "[press, cancel]}\n    fields: [ts, kind]\n")
    config = console_config(
        tmp_path, site=unique_site("up-status"), broker_port=mosquitto.port,
        store_url=victoria.url, sharing={"audit_keep_days": 1},
        journal={"path": str(tmp_path / "journal.db"), "prune_interval_s": 0.05},
        upstreams=[{
            "name": "district", "kind": "webhook", "policy": str(policy),
            "url": f"https://localhost:{free_port()}/nobody-listens",
            "ca_file": str(platform_pki["ca"]), "secret_env": "SCGW_TEST_STATUS_SECRET",
            "retry_min_s": 0.05, "retry_max_s": 0.2}])
    # no replay windows: the local sinks keep nothing back from the pruning
    config = config.model_copy(update={
        "broker": config.broker.model_copy(update={"replay_window_s": 0}),
        "store": config.store.model_copy(update={"replay_window_s": 0})})
    add_user(config, "wang")
    # the audit of what left, kept a day: the older row goes at the first pruning
    now = int(time.time() * 1000)
    async with Journal(config.journal.path) as journal:
        await journal.commit(cursor=("upstream:district", 0), shared=[
            SharedRow("district", "old", 0, "sos", "elder-1", "elder_button", "firing", "id",
                      "", "", now - 2 * 86_400_000),
            SharedRow("district", "new", 0, "sos", "elder-1", "elder_button", "firing", "id",
                      "", "", now - 3_600_000)])
    async with running(Gateway(config)) as gateway:
        # a check-in the platform does not take, then a press it does, as the button's
        # driver hands them over
        await gateway.event(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "heartbeat",
                                       gateway.clock.now_ms()))
        await eventually(lambda: gateway.upstreams[0].cursor == gateway.journal.last_seq,
                         what="the check-in passed")
        await gateway.event(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "press",
                                       gateway.clock.now_ms()))
        await eventually(lambda: gateway.upstreams[0].state.value == "down",
                         what="the platform found down")
        (press,) = [e.record for e in (await gateway.journal.read_after(0, 100)).entries
                    if isinstance(e.record, DeviceEvent) and e.record.type == "press"]
        await gateway.event(make_event(DeviceKind.ELDER_BUTTON, "elder-1", "cancel",
                                       gateway.clock.now_ms()))
        await eventually(lambda: min(gateway.local_sink_cursors().values())
                         == gateway.journal.last_seq, what="the local sinks served")
        # the sinks' cursor moves ride on the next durable commit: make one
        await gateway.journal.commit(state={"test.durable": b"1"})
        await eventually(lambda: gateway.counters.get("journal_pruned") > 0,
                         what="the check-in pruned")
        # what the platform has not confirmed stays in the journal (on disk) for it
        stored = await gateway.journal.read_after(0, 100, stored=True)
        assert press.id in [e.record.id for e in stored.entries]
        # the audit's row past its retention is deleted in the same turn of the pruning, as
        # `scgw sharing report` reads it from the running gateway
        async def audit() -> bool:
            rows = await asyncio.to_thread(read_audit, config.journal, 0)
            return [r.record_id for r in rows] == ["new"]

        await eventually(audit, what="the audit kept a day")
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
