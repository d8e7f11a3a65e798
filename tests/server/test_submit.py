"""Exactly-once, in process: `Document` and its `Submissions` against a real redis-server.

No `tandem serve` in between, so a group-commit bug shows here as the wrong answer to one
submission, not as a convergence mismatch far away. Two documents over two stores stand for
two processes; they learn each other's ops from the log only (no pub/sub listener), which is
the path a lost notification takes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from tandem.ot.operation import Insert, apply
from tandem.ot.protocol import Ack, Error
from tandem.server.document import Document, HeadCheck, Join
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.redis import RedisOpStore
from tandem.server.submit import Submission
from tandem.testing.proxy import ReplyCutter
from tests.support import RedisProcess, run, unique_doc

OK_REPLY = b"*1\r\n$2\r\nok\r\n"  # the commit script's answer when it committed


class Recorder:
    """A session as the document sees one: what it was sent, with the revision it was brought to."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.sent: list[tuple[str, int | None]] = []
        self.closed = False

    def deliver(self, text: str, rev: int | None = None) -> None:
        self.sent.append((text, rev))

    def unavailable(self) -> None:
        self.closed = True

    def kinds(self, rev: int) -> list[str]:
        """The kinds of message ("op", "ack") this receiver was sent for revision ``rev``."""
        return [text.split('"type":"')[1].split('"')[0] for text, r in self.sent if r == rev]


async def opened(name: str, store: RedisOpStore, metrics: Metrics | None = None) -> Document:
    doc = Document(name, store, Settings(), metrics or Metrics(), lambda name, frame: None)
    await doc.load()
    doc.start()
    return doc


async def joined(doc: Document, receiver: Recorder) -> None:
    done: asyncio.Future[Error | None] = asyncio.get_running_loop().create_future()
    doc.put(Join(receiver, None, done))
    assert await done is None


@contextlib.asynccontextmanager
async def alice_and_bob(
    name: str, store: RedisOpStore, metrics: Metrics | None = None
) -> AsyncIterator[tuple[Document, Recorder, Recorder]]:
    """``name`` open over ``store`` with two receivers joined; the document and the store are
    closed after."""
    doc = await opened(name, store, metrics)
    alice, bob = Recorder("alice"), Recorder("bob")
    try:
        await joined(doc, alice)
        await joined(doc, bob)
        yield doc, alice, bob
    finally:
        await doc.stop()
        await store.close()


async def at_revision(doc: Document, rev: int, timeout: float = 10.0) -> None:
    """Wait until ``doc`` holds revision ``rev``, asking it to read the log's head meanwhile."""

    async def reached() -> None:
        while doc.rev < rev:
            doc.put(HeadCheck())
            await asyncio.sleep(0.02)

    await asyncio.wait_for(reached(), timeout)


@pytest.fixture
def cutter(redis: RedisProcess) -> Iterator[ReplyCutter]:
    assert redis.port is not None
    proxy = ReplyCutter(redis.port, OK_REPLY)
    yield proxy
    proxy.close()


def test_two_processes_racing_on_one_document_commit_every_op_once(redis: RedisProcess) -> None:
    name = unique_doc("race")
    rounds = 30

    async def scenario() -> None:
        stores = [RedisOpStore(redis.url), RedisOpStore(redis.url)]
        metrics = [Metrics(), Metrics()]
        docs = [await opened(name, s, m) for s, m in zip(stores, metrics, strict=True)]
        watchers = [Recorder("watch-a"), Recorder("watch-b")]
        for doc, watcher in zip(docs, watchers, strict=True):
            await joined(doc, watcher)
        try:
            submissions: list[Submission] = []
            for i in range(rounds):
                for doc, client in zip(docs, ("alice", "bob"), strict=True):
                    # every op made against the empty document: each is rebased through all before it
                    s = Submission(client, i + 1, 0, (Insert(f"<{client[0]}{i}>"),))
                    doc.put(s)
                    submissions.append(s)
                await asyncio.sleep(0)
            answers = await asyncio.wait_for(asyncio.gather(*(s.result for s in submissions)), 30)
            assert all(isinstance(a, Ack) for a in answers), [a for a in answers if not isinstance(a, Ack)]
            assert sorted(a.rev for a in answers) == list(range(1, 2 * rounds + 1)), "one revision each"
            assert sum(m.get("tandem_commit_retries_total") for m in metrics) > 0, "the two never raced"
            for doc in docs:
                await at_revision(doc, 2 * rounds)
            log = await stores[0].ops(name, 1, 2 * rounds)
            text = ""
            for stored in log:
                text = apply(text, stored.op.ops)
            assert docs[0].text == docs[1].text == text
            for i in range(rounds):
                assert text.count(f"<a{i}>") == text.count(f"<b{i}>") == 1
            # each watcher was sent every revision once, as an op: none of them submitted anything
            for watcher in watchers:
                assert [rev for _, rev in watcher.sent if rev is not None][-2 * rounds :] == list(
                    range(1, 2 * rounds + 1)
                )
        finally:
            for doc in docs:
                await doc.stop()
            for store in stores:
                await store.close()

    run(scenario(), timeout=60)


def test_a_commit_whose_reply_was_lost_reaches_the_other_receivers_unasked(
    redis: RedisProcess, cutter: ReplyCutter
) -> None:
    """The commit's own notification is not listened to (the hub drops it as in flight): after
    a lost reply the document reads the head itself, with no resubmission and no head check."""
    name = unique_doc("lost-reply-heard")

    async def scenario() -> None:
        store = RedisOpStore(cutter.url, timeout=5)
        async with alice_and_bob(name, store) as (doc, alice, bob):
            first = Submission("alice", 1, 0, (Insert("hi"),), origin=alice)
            doc.put(first)
            answer = await asyncio.wait_for(first.result, 15)
            assert isinstance(answer, Error) and answer.code == "unavailable", answer
            for _ in range(200):
                if bob.kinds(1):
                    break
                await asyncio.sleep(0.05)
            assert bob.kinds(1) == ["op"] and doc.text == "hi"

    run(scenario(), timeout=60)


def test_a_repeat_inside_one_group_is_answered_with_the_same_revision(redis: RedisProcess) -> None:
    name = unique_doc("repeat")

    async def scenario() -> None:
        metrics = Metrics()
        store = RedisOpStore(redis.url)
        async with alice_and_bob(name, store, metrics) as (doc, alice, bob):
            first = Submission("alice", 1, 0, (Insert("a"),), origin=alice)
            again = Submission("alice", 1, 0, (Insert("a"),), origin=alice)  # a resubmission
            other = Submission("bob", 1, 0, (Insert("b"),), origin=bob)
            for s in (first, again, other):  # one event-loop turn: one group
                doc.put(s)
            answers = await asyncio.wait_for(asyncio.gather(first.result, again.result, other.result), 10)
            assert [(a.seq, a.rev) for a in answers if isinstance(a, Ack)] == [(1, 1), (1, 1), (1, 2)]
            assert answers[0] == answers[1], "both submissions of seq 1 get the one ack"
            assert (await store.head(name)).rev == 2 and sorted(doc.text) == ["a", "b"]
            assert metrics.get("tandem_ops_committed_total") == 2, "the repeat is committed once"
            assert alice.kinds(1) == ["ack", "ack"] and alice.kinds(2) == ["op"], "acks, never her own op"
            assert bob.kinds(1) == ["op"] and bob.kinds(2) == ["ack"]

    run(scenario())


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "redis-py"])
def test_a_lost_commit_reply_is_answered_once_and_a_resubmit_gets_the_original_ack(
    redis: RedisProcess, cutter: ReplyCutter, pipelined: bool
) -> None:
    name = unique_doc("lost-reply")

    async def scenario() -> None:
        store = RedisOpStore(cutter.url, pipelined=pipelined, timeout=5)
        async with alice_and_bob(name, store) as (doc, alice, bob):
            first = Submission("alice", 1, 0, (Insert("hi"),), origin=alice)
            doc.put(first)
            answer = await asyncio.wait_for(first.result, 15)
            assert cutter.cuts >= 1, "the commit's reply was never cut"
            # `unavailable` (maybe committed), or, where a client library retries the script by
            # itself, its ack: the second run finds the op committed and answers it from the log.
            assert (isinstance(answer, Error) and answer.code == "unavailable") or (
                isinstance(answer, Ack) and answer.rev == 1
            ), answer
            resubmit = Submission("alice", 1, 0, (Insert("hi"),), origin=alice)
            doc.put(resubmit)
            again = await asyncio.wait_for(resubmit.result, 15)
            assert isinstance(again, Ack) and (again.seq, again.rev) == (1, 1), again
            assert (await store.head(name)).rev == 1, "committed once"
            assert doc.text == "hi"
            assert "op" not in alice.kinds(1), "her own op never reaches her as an op"
            assert bob.kinds(1) == ["op"]

    run(scenario(), timeout=60)
