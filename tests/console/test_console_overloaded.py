"""The built-in alert gateway.overloaded on the duty office's console: on the board like
any alert, with its label in the page's words in Chinese and in English."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gateway.console.accounts import Role
from gateway.core.kinds import make_event
from gateway.core.model import DeviceKind
from gateway.ops.private_servers import Mosquitto, VictoriaMetrics
from gateway.supervisor import Gateway
from tests.console.rig import (
    OFFICER,
    VIEWER,
    add_user,
    base_url,
    client,
    console_config,
    login,
)
from tests.helpers import eventually, running, unique_site

LABELS = {"zh-CN": ("网关处理积压", "网关"), "en": ("Gateway overloaded", "gateway")}


async def test_gateway_overloaded_is_on_the_board_with_its_label(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    config = console_config(tmp_path, site=unique_site("con-over"),
                            broker_port=mosquitto.port, store_url=victoria.url)
    users = {"zh-CN": OFFICER, "en": VIEWER}
    for language, user in users.items():
        add_user(config, user, Role.VIEWER if user == VIEWER else Role.OFFICER,
                 language=language)
    base = base_url(config)
    seen: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    async with running(Gateway(config)) as gateway:
        await eventually(lambda: gateway.console.ready.is_set(), what="console")
        # what the gateway journals when a lane stays behind
        await gateway.journal.commit([make_event(
            DeviceKind.GATEWAY, "gateway", "overloaded", gateway.clock.now_ms(),
            {"lane": "bulk", "behind_s": 12.5, "messages": 256})])
        await eventually(lambda: any(a.rule == "gateway.overloaded"
                                     for a in gateway.rules.active()), what="the alert")
        for language, user in users.items():
            async with client() as session:
                assert await login(session, base, user) == 303
                async with session.get(base + "/api/board") as response:
                    board = await response.json()
                async with session.get(base + "/") as response:
                    page = await response.text()
            (alert,) = [a for a in board["alerts"] if a["rule"] == "gateway.overloaded"]
            found = re.search(r'<script type="application/json" id="words">(.*?)</script>',
                              page, re.DOTALL)
            assert found is not None
            seen[language] = alert, json.loads(found.group(1))
    for language, (alert, words) in seen.items():
        assert (alert["kind"], alert["state"]) == ("gateway", "firing")
        assert "behind by 12 s" in alert["message"] or "behind by 13 s" in alert["message"]
        label, kind = LABELS[language]
        # the board's script shows word("rule", alert.rule) and word("kind", alert.kind)
        assert words[f"rule.{alert['rule']}"] == label
        assert words[f"kind.{alert['kind']}"] == kind
