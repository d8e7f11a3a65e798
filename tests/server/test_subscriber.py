"""The lean pub/sub connection (server/store/subscriber.py) and what the hub drops of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from tandem.server.document import Document
from tandem.server.hub import _last_rev
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.redis import RedisOpStore
from tandem.server.store.subscriber import Subscriber
from tests.support import RedisProcess, run


@contextlib.asynccontextmanager
async def subscribed(url: str, *channels: str) -> AsyncIterator[tuple[Subscriber, list[tuple[bytes, bytes]]]]:
    """A started `Subscriber` on ``channels`` and the (channel, data) pairs it hears; closed after."""
    heard: list[tuple[bytes, bytes]] = []
    subscriber = Subscriber(url, lambda channel, data: heard.append((channel, data)), timeout=5)
    subscriber.start(*channels)
    try:
        yield subscriber, heard
    finally:
        await subscriber.close()


async def _received(heard: list[tuple[bytes, bytes]], count: int, timeout: float = 10.0) -> None:
    async def enough() -> None:
        while len(heard) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(enough(), timeout)


def test_a_subscription_is_in_place_when_subscribe_returns(redis: RedisProcess) -> None:
    async def scenario() -> None:
        publisher = aioredis.from_url(redis.url)
        async with subscribed(redis.url, "t:own") as (subscriber, heard):
            for i in range(20):
                await subscriber.subscribe(f"t:sub-{i}")
                # no wait in between: Redis confirmed the subscription before subscribe returned
                assert await publisher.publish(f"t:sub-{i}", b"m%d" % i) == 1
            await _received(heard, 20)
            assert heard == [(f"t:sub-{i}".encode(), b"m%d" % i) for i in range(20)]
            await subscriber.unsubscribe("t:sub-0")
            assert await publisher.publish("t:sub-0", b"gone") == 0
        await publisher.aclose()

    run(scenario())


def test_a_killed_pubsub_connection_comes_back_with_every_channel(redis: RedisProcess) -> None:
    async def scenario() -> None:
        admin = aioredis.from_url(redis.url)
        async with subscribed(redis.url, "t:kept-a") as (subscriber, heard):
            await subscriber.subscribe("t:kept-b")
            assert await admin.client_kill_filter(_type="pubsub") >= 1
            for _ in range(200):  # reconnected and subscribed to both again
                if await admin.pubsub_numsub("t:kept-a", "t:kept-b") == [(b"t:kept-a", 1), (b"t:kept-b", 1)]:
                    break
                await asyncio.sleep(0.05)
            await admin.publish("t:kept-a", b"1")
            await admin.publish("t:kept-b", b"2")
            await _received(heard, 2)
            assert heard == [(b"t:kept-a", b"1"), (b"t:kept-b", b"2")]
        await admin.aclose()

    run(scenario())


def test_the_hub_reads_the_last_revision_of_a_commit_message_without_decoding_it() -> None:
    one = b'{"type":"op","rev":41,"client":"a","seq":1,"ops":["x"],"hash":"00"}'
    two = b'{"type":"op","rev":42,"client":"a","seq":2,"ops":["\\"rev\\":9,"],"hash":"01"}'
    assert _last_rev(one) == 41
    assert _last_rev(one + b"\n" + two) == 42
    assert _last_rev(b'{"type":"presence"}') is None
    assert _last_rev(b'{"type":"op","rev":x1,') is None


def test_a_document_learns_otherwise_what_it_holds_or_is_committing(redis: RedisProcess) -> None:
    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        doc = Document("learns", store, Settings(), Metrics(), lambda name, frame: None)
        try:
            doc.rev = 5
            assert doc.learns_otherwise(5) and doc.learns_otherwise(3)
            assert not doc.learns_otherwise(6) and not doc.learns_otherwise(None)
            doc.committing = 7  # revisions 6 and 7 are in flight
            assert doc.learns_otherwise(7) and not doc.learns_otherwise(8)
        finally:
            await store.close()

    run(scenario())
