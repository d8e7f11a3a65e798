"""Snapshots cost in proportion to the ops they follow, and a trimmed log keeps only those it needs.

`Document` and `RedisOpStore` against a real redis-server: what is stored is read back with a
plain Redis client, and a second `Document` loaded from the store must hold the same text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis as redis_sync

from tandem.ot.operation import Insert, Retain
from tandem.ot.protocol import Ack
from tandem.server.document import Document
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.redis import Keys, RedisOpStore
from tandem.server.submit import SNAPSHOT_TEXT_SHARE, Submission
from tests.support import RedisProcess, run, unique_doc


async def _type(settings: Settings, url: str, name: str, first: str, ops: int) -> tuple[str, str]:
    """Insert ``first`` at revision 1, then ``ops`` one-character ops, one commit each; the text
    the document holds, and the text a document loaded afresh from the store holds."""
    store = RedisOpStore(url, log_retention=settings.log_retention)
    doc = Document(name, store, settings, Metrics(), lambda name, frame: None)
    await doc.load()
    doc.start()
    try:
        steps = [(Insert(first),)] + [(Retain(len(first) + i), Insert("x")) for i in range(ops)]
        for seq, step in enumerate(steps, start=1):
            submission = Submission("typist", seq, seq - 1, step)
            doc.put(submission)
            assert isinstance(await asyncio.wait_for(submission.result, 10), Ack)
        fresh = Document(name, store, settings, Metrics(), lambda name, frame: None)
        await fresh.load()
        assert (await store.text_at(name, doc.rev)).text == doc.text
        return doc.text, fresh.text
    finally:
        await doc.stop()
        await store.close()


def _snapshot_sizes(url: str, name: str) -> list[int]:
    client: Any = redis_sync.Redis.from_url(url)
    try:
        keys = Keys(name)
        return [client.hstrlen(keys.snaps, rev) for rev in client.zrange(keys.snaprevs, 0, -1)]
    finally:
        client.close()


def _log_bytes(url: str, name: str) -> int:
    client: Any = redis_sync.Redis.from_url(url)
    try:
        return sum(len(fields[b"r"]) for _, fields in client.xrange(Keys(name).log, "-", "+"))
    finally:
        client.close()


def test_snapshots_of_a_large_document_cost_in_proportion_to_its_ops(redis: RedisProcess) -> None:
    # A snapshot every 10 revisions would store 40 copies of a 100,000-code-point text for 400
    # one-character ops: 25 times what the ops and the first insert cost. Snapshots wait for ops.
    name = unique_doc("large")
    settings = Settings(snapshot_interval=10)
    held, loaded = run(_type(settings, redis.url, name, "a" * 100_000, 400))
    assert held == loaded == "a" * 100_000 + "x" * 400
    sizes = _snapshot_sizes(redis.url, name)
    assert 1 <= len(sizes) <= 8, sizes
    assert sum(sizes) <= SNAPSHOT_TEXT_SHARE * _log_bytes(redis.url, name)


def test_a_small_document_is_still_snapshotted_every_interval(redis: RedisProcess) -> None:
    name = unique_doc("small")
    held, loaded = run(_type(Settings(snapshot_interval=10), redis.url, name, "a", 49))
    assert held == loaded == "a" + "x" * 49
    assert len(_snapshot_sizes(redis.url, name)) == 5  # at revisions 10, 20, 30, 40, 50


def test_a_trimmed_log_keeps_only_the_snapshots_it_needs(redis: RedisProcess) -> None:
    # Without deletion, every snapshot taken stays forever though the log before it is gone.
    name = unique_doc("trimmed")
    settings = Settings(snapshot_interval=5, log_retention=5)
    held, loaded = run(_type(settings, redis.url, name, "a", 99))
    assert held == loaded == "a" + "x" * 99
    assert len(_snapshot_sizes(redis.url, name)) <= 3  # the one the log starts after, and later ones
