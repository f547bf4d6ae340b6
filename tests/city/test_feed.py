"""The board's feed against a real cluster: a consumer that stays silent while the stream
holds messages it has not given is made again, and nothing is shown twice.

nats-server 2.9 can leave a consumer like that after its node or the stream's leader was
lost, though not on demand: here the first consumer is made silent by its filter (a
subject no record has), a real consumer on a real stream all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from nats.js import api
from nats.js.client import JetStreamContext

import hub.feed
from gateway.core.model import DeliveryClass, DeviceEvent, DeviceKind, new_id
from gateway.ops.private_servers import NatsCluster
from hub.feed import EventFeed
from hub.provision import provision
from tests.city.rig import CityNames, city_client, hub_config, publish
from tests.helpers import eventually

T0 = int(time.time() * 1000)


SILENT = "its consumer gave nothing"  # what the feed logs as it makes a silent one again


def _silences(caplog: pytest.LogCaptureFixture) -> int:
    return sum(SILENT in r.getMessage() for r in caplog.records if r.name == "hub.feed")


def _press(n: int) -> DeviceEvent:
    return DeviceEvent(id=new_id(T0 + n), ts=T0 + n, kind=DeviceKind.ELDER_BUTTON,
                       device=f"e{n}", type="press", cls=DeliveryClass.ALARM, fields={})


@pytest.fixture(autouse=True)
def quick_fetches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub.feed, "FETCH_WAIT_S", 0.2)


class SilentFirst(EventFeed):
    """A feed whose first consumer gives nothing: its filter is a subject nobody sends."""

    def __init__(self, js: JetStreamContext, names: CityNames) -> None:
        super().__init__(js, names.stream, kept=100)
        self.silent = f"sc.{names.district}.nobody.>"
        self.made: list[str] = []  # the filter of every consumer made, in order

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        if self.made:
            self.made.append("")
            return await super()._subscribe()
        self.made.append(self.silent)
        return await self._js.pull_subscribe(
            self.silent, stream=self._stream, config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, opt_start_seq=1,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                inactive_threshold=hub.feed.INACTIVE_S, mem_storage=True, num_replicas=1))


async def test_a_silent_consumer_is_made_again_and_every_event_shows_once(
        nats_cluster: NatsCluster, city: CityNames, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.feed")
    await provision(hub_config(nats_cluster, city, "http://127.0.0.1:9"), {})
    async with city_client(nats_cluster) as js:
        feed = SilentFirst(js, city)
        following = asyncio.create_task(feed.follow())
        try:
            await eventually(lambda: feed.made == [feed.silent], what="the silent consumer")
            presses = [_press(n) for n in range(3)]
            for press in presses:
                await publish(js, city.district, "c1", press)
            # LOOK_EVERY empty fetches of 0.2 s, then the stream's leader is asked
            await eventually(lambda: len(feed.events) == len(presses), timeout=15,
                             what="the presses on the board")
            await publish(js, city.district, "c1", more := _press(3))
            await eventually(lambda: len(feed.events) == 4, what="the next press")
        finally:
            following.cancel()
            await asyncio.wait([following])
    shown: list[Any] = [(e["id"], e["seq"]) for e in feed.events]
    assert shown == [(p.id, n + 1) for n, p in enumerate([*presses, more])]
    assert feed.counts == {(city.district, "c1"): 4}
    assert feed.made[:2] == [feed.silent, ""]
    # one look found it silent (a message published as the feed looks can count as one
    # more, which costs a consumer made again, nothing shown twice)
    assert _silences(caplog) >= 1


async def test_a_consumer_that_gave_everything_is_kept(
        nats_cluster: NatsCluster, city: CityNames, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.feed")
    await provision(hub_config(nats_cluster, city, "http://127.0.0.1:9"), {})
    async with city_client(nats_cluster) as js:
        feed = EventFeed(js, city.stream, kept=100)
        looks = 0  # the feed asking the stream's leader how far the stream goes
        stream_info = js.stream_info

        async def looked(*args: Any, **kwargs: Any) -> Any:
            nonlocal looks
            looks += 1
            return await stream_info(*args, **kwargs)

        js.stream_info = looked  # type: ignore[method-assign]
        following = asyncio.create_task(feed.follow())
        try:
            await publish(js, city.district, "c2", _press(7))
            await eventually(lambda: len(feed.events) == 1, what="the press on the board")
            seen_at = looks
            # three looks after it was shown, nothing waiting in the stream
            await eventually(lambda: looks >= seen_at + 3, timeout=20, what="three looks")
        finally:
            following.cancel()
            await asyncio.wait([following])
    # the looks found nothing waiting: the consumer was kept
    assert _silences(caplog) == 0
    assert feed.counts == {(city.district, "c2"): 1}
    assert [e["seq"] for e in feed.events] == [1]
