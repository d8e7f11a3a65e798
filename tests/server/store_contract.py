"""The OpStore contract, written once and run over every commit path: the pipelined
connection and redis-py (test_store_redis.py), and a Redis Cluster (tests/reliability/test_cluster.py).

Each check is an async function taking a fresh store, made with ``log_retention=LOG_RETENTION``
and listening (what it hears goes to its ``received`` queue), and a document id no other
check uses. `run_check` does that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tandem.ot.integrity import genesis_hash, next_hash
from tandem.ot.operation import Insert, Operation, Retain, apply
from tandem.ot.protocol import CommittedOp, Snapshot
from tandem.server.store.base import HistoryGone, OpStore, StoredOp
from tandem.server.store.redis import RedisOpStore
from tests.support import unique_doc

Check = Callable[[OpStore, str], Awaitable[None]]
CHECKS: list[Check] = []
LOG_RETENTION = 2


async def run_check(check: Check, url: str, **options: Any) -> None:
    """Run ``check`` on a fresh `RedisOpStore` over ``url`` (``options`` go to its constructor)."""
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def listener(doc: str, message: bytes) -> None:
        received.put_nowait((doc, message))

    store = RedisOpStore(url, log_retention=LOG_RETENTION, **options)
    store.received = received  # type: ignore[attr-defined]
    store.start_listening(listener)
    try:
        await check(store, unique_doc(check.__name__[:40].replace("_", "-")))
    finally:
        await store.close()


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def chain(
    doc: str, steps: list[tuple[str, int, Operation]], start_rev: int = 0, start_hash: str | None = None
) -> list[StoredOp]:
    """Records with correct hashes for ``steps`` of (client, seq, ops) after ``start_rev``."""
    prev = start_hash or genesis_hash(doc)
    records = []
    for offset, (client, seq, ops) in enumerate(steps, start=1):
        rev = start_rev + offset
        prev = next_hash(prev, rev, client, seq, ops)
        records.append(StoredOp.of(CommittedOp(rev, client, seq, ops, prev)))
    return records


def typing(doc: str, text: str, client: str = "c") -> list[StoredOp]:
    steps: list[tuple[str, int, Operation]] = [
        (client, i + 1, ((Retain(i),) if i else ()) + (Insert(ch),)) for i, ch in enumerate(text)
    ]
    return chain(doc, steps)


@check
async def an_unknown_document_is_empty_at_revision_0(store: OpStore, doc: str) -> None:
    head = await store.head(doc)
    assert (head.rev, head.hash) == (0, genesis_hash(doc))
    assert await store.ops(doc, 1, 10) == []
    assert await store.first_logged_rev(doc) is None
    assert await store.client_record(doc, "c") is None
    assert (await store.text_at(doc, 0)).text == ""


@check
async def a_commit_at_the_head_advances_it(store: OpStore, doc: str) -> None:
    [record] = typing(doc, "a")
    assert (await store.commit(doc, 0, [record])).status == "ok"
    head = await store.head(doc)
    assert (head.rev, head.hash) == (1, record.op.hash)
    assert await store.ops(doc, 1, 1) == [record]
    record_of_c = await store.client_record(doc, "c")
    assert record_of_c is not None
    assert (record_of_c.seq, record_of_c.rev, record_of_c.hash) == (1, 1, head.hash)


@check
async def a_commit_behind_the_head_is_told_where_the_head_is(store: OpStore, doc: str) -> None:
    first, second = typing(doc, "ab")
    await store.commit(doc, 0, [first])
    result = await store.commit(doc, 0, [second])
    assert result.status == "moved" and result.head is not None
    assert (result.head.rev, result.head.hash) == (1, first.op.hash)
    assert (await store.head(doc)).rev == 1


@check
async def a_committed_client_seq_is_answered_with_its_original_revision(store: OpStore, doc: str) -> None:
    first, second = typing(doc, "ab")
    await store.commit(doc, 0, [first])
    again = chain(doc, [("c", 1, (Retain(1), Insert("z")))], 1, first.op.hash)
    result = await store.commit(doc, 1, again)
    assert result.status == "duplicate" and result.index == 0 and result.original is not None
    assert (result.original.seq, result.original.rev, result.original.hash) == (1, 1, first.op.hash)
    assert (await store.head(doc)).rev == 1, "a duplicate commits nothing"


@check
async def a_group_commit_gives_each_op_its_own_revision(store: OpStore, doc: str) -> None:
    records = typing(doc, "xyz")
    assert (await store.commit(doc, 0, records)).status == "ok"
    assert [s.op.rev for s in await store.ops(doc, 1, 3)] == [1, 2, 3]
    assert (await store.head(doc)).hash == records[-1].op.hash
    assert (await store.ops(doc, 2, 2))[0] == records[1]


@check
async def a_group_with_one_duplicate_commits_nothing(store: OpStore, doc: str) -> None:
    [first] = typing(doc, "a", client="c")
    await store.commit(doc, 0, [first])
    batch = chain(doc, [("d", 1, (Insert("q"),)), ("c", 1, (Insert("r"),))], 1, first.op.hash)
    result = await store.commit(doc, 1, batch)
    assert result.status == "duplicate" and result.index == 1
    assert (await store.head(doc)).rev == 1


@check
async def text_at_a_past_revision_uses_snapshots_and_the_log(store: OpStore, doc: str) -> None:
    records = typing(doc, "hello")
    await store.commit(doc, 0, records[:3], Snapshot(rev=3, text="hel", hash=records[2].op.hash))
    await store.commit(doc, 3, records[3:])
    for rev in range(6):
        snap = await store.text_at(doc, rev)
        assert (snap.rev, snap.text) == (rev, "hello"[:rev])
        assert snap.hash == (records[rev - 1].op.hash if rev else genesis_hash(doc))
    assert (await store.snapshot_at_or_before(doc, 4)).rev == 3


@check
async def a_log_kept_to_its_retention_still_serves_text_from_a_snapshot(store: OpStore, doc: str) -> None:
    # A snapshot at 5 trims the log to just after the latest snapshot at or below 5 - LOG_RETENTION.
    records = typing(doc, "hello")
    await store.commit(doc, 0, records[:3], Snapshot(rev=3, text="hel", hash=records[2].op.hash))
    assert await store.first_logged_rev(doc) == 1, "no snapshot at or below 3 - LOG_RETENTION yet"
    await store.commit(doc, 3, records[3:], Snapshot(rev=5, text="hello", hash=records[4].op.hash))
    assert 5 - LOG_RETENTION == 3
    assert await store.first_logged_rev(doc) == 4
    assert (await store.text_at(doc, 4)).text == "hell"
    assert (await store.text_at(doc, 5)).text == "hello"
    with pytest.raises(HistoryGone):
        await store.text_at(doc, 2)


@check
async def a_page_of_ops_stops_at_its_byte_bound(store: OpStore, doc: str) -> None:
    records = typing(doc, "x" * 40)
    await store.commit(doc, 0, records)
    size = len(records[0].frame)  # every record of "typing" one letter is about as long
    page = await store.ops(doc, 1, 40, max_bytes=3 * size)
    assert [s.op.rev for s in page] == list(range(1, len(page) + 1)) and 3 <= len(page) <= 4
    assert sum(len(s.frame) for s in page[:-1]) < 3 * size <= sum(len(s.frame) for s in page)
    assert [s.op.rev for s in await store.ops(doc, 38, 40, max_bytes=1)] == [38], "one op at least"
    assert [s.op.rev for s in await store.ops(doc, 30, 40, max_bytes=10**9)] == list(range(30, 41))
    assert await store.ops(doc, 41, 50, max_bytes=10**9) == []


@check
async def a_trimmed_log_keeps_only_the_snapshots_it_starts_after(store: OpStore, doc: str) -> None:
    # Snapshots at 3, 5 and 7: the one at 7 trims the log to just after 5 (7 - LOG_RETENTION),
    # and the snapshot at 3 rebuilds no kept revision any more: it is deleted.
    records = typing(doc, "abcdefg")
    for first, last in ((0, 3), (3, 5), (5, 7)):
        snapshot = Snapshot(rev=last, text="abcdefg"[:last], hash=records[last - 1].op.hash)
        assert (await store.commit(doc, first, records[first:last], snapshot)).status == "ok"
    assert await store.first_logged_rev(doc) == 6
    assert (await store.snapshot_at_or_before(doc, 4)).rev == 0, "the snapshot at 3 is gone"
    assert (await store.snapshot_at_or_before(doc, 6)).rev == 5
    assert (await store.text_at(doc, 6)).text == "abcdef"
    assert (await store.text_at(doc, 7)).text == "abcdefg"
    with pytest.raises(HistoryGone):
        await store.text_at(doc, 3)


@check
async def calls_past_the_connection_limit_wait_for_a_connection(store: OpStore, doc: str) -> None:
    # Far more calls at once than the store holds connections: each waits for one, none fails.
    await store.commit(doc, 0, typing(doc, "ab"))
    heads = await asyncio.gather(*(store.head(doc) for _ in range(500)))
    texts = await asyncio.gather(*(store.text_at(doc, 1) for _ in range(500)))
    assert {h.rev for h in heads} == {2} and {t.text for t in texts} == {"a"}


@check
async def text_at_applies_every_op_in_order(store: OpStore, doc: str) -> None:
    steps: list[tuple[str, int, Operation]] = [
        ("a", 1, (Insert("abc"),)),
        ("b", 1, (Retain(1), Insert("X"))),
        ("a", 2, (Retain(4), Insert("😀"))),
    ]
    await store.commit(doc, 0, chain(doc, steps))
    text = ""
    for _, _, ops in steps:
        text = apply(text, ops)
    assert (await store.text_at(doc, 3)).text == text == "aXbc😀"


@check
async def published_messages_reach_the_listener_of_a_subscribed_document(store: OpStore, doc: str) -> None:
    received: asyncio.Queue[tuple[str, bytes]] = getattr(store, "received")  # noqa: B009
    await store.subscribe(doc)
    for _ in range(100):  # the subscription is set up by the listener task
        await store.publish(doc, b"hi")
        try:
            got = await asyncio.wait_for(received.get(), 0.1)
        except TimeoutError:
            continue
        assert got == (doc, b"hi")
        break
    else:
        raise AssertionError("nothing published reached the listener")
    [record] = typing(doc, "a")
    await store.commit(doc, 0, [record])
    while (got := await asyncio.wait_for(received.get(), 5)) == (doc, b"hi"):
        pass
    assert got == (doc, record.frame), "a commit publishes the committed frame"
