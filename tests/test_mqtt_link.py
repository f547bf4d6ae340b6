"""The broker connection's socket handling when a connection breaks."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.clock import SystemClock
from gateway.config import BrokerConfig
from gateway.counters import Counters
from gateway.mqtt_link import LastWill, MqttLink
from gateway.services import Mosquitto


async def test_a_write_wait_for_a_connection_closed_meanwhile_is_dropped(
    mosquitto: Mosquitto,
) -> None:
    """paho asks for a writer when the socket takes no more (a burst), from any thread, and
    the loop adds it a turn later: by then the connection may have broken. A writer added
    for its closed descriptor failed with EBADF (a traceback in the log at every such
    reconnect), or, with the descriptor reused, fired for ever for the next connection."""
    link = MqttLink(BrokerConfig(port=mosquitto.port), "gw-link-test",
                    LastWill("sc/t/gateway/status", b"offline"), SystemClock(), Counters())
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    task = asyncio.create_task(link.run(), name="test.link")
    try:
        session = await asyncio.wait_for(link.session(), 10)
        paho = session.client._client
        paho._call_socket_register_write()  # what paho does when a send would block
        paho._sock_close()  # what it does when the connection breaks
        for _ in range(10):
            await asyncio.sleep(0)  # the loop runs what was scheduled
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop.set_exception_handler(previous)
    assert [c.get("exception") for c in errors] == []
