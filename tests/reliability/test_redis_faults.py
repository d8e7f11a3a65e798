"""Redis failing in the ways that leave a doubt, and a server stopping with requests in flight.

- a reply lost after the commit script ran: the op is answered once, never as an op and an ack;
- a Redis that stops answering (SIGSTOP, as a network blackhole looks): ops and fetches are
  answered `unavailable` within the timeout, not when Redis speaks again;
- a client whose op another process committed, resuming on a process that has not heard of it;
- an op sent twice landing in one group commit;
- a log that comes back with another history: never adopted, never built on;
- `tandem serve` stopped while an HTTP submit waits: 503, not a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tandem.ot.operation import Insert
from tandem.ot.protocol import Ack, Error
from tandem.server.document import Document, Join
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.redis import RedisOpStore
from tandem.server.submit import Submission
from tandem.testing.proxy import ReplyCutter
from tests.support import (
    Message,
    Raw,
    RedisProcess,
    ServerProcess,
    assert_verified,
    document,
    http_post,
    redis_process,
    run,
    unique_doc,
)

pytestmark = pytest.mark.slow

QUIET = ("--log-level", "error")
OK_REPLY = b"*1\r\n$2\r\nok\r\n"  # the commit script's answer when it committed


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    process = redis_process(tmp_path_factory.mktemp("faults-redis"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def p1(store: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Its commits keep one revision of log before the latest snapshot: older bases are gone.
    with ServerProcess(
        store.url,
        tmp_path_factory.mktemp("p1"),
        extra_args=(*QUIET, "--redis-timeout", "1", "--snapshot-interval", "2", "--log-retention", "1"),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def p2(store: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A long head check: what it has not heard of on pub/sub, it learns only when it must.
    with ServerProcess(
        store.url,
        tmp_path_factory.mktemp("p2"),
        extra_args=(*QUIET, "--redis-timeout", "1", "--snapshot-interval", "2", "--head-check-seconds", "60"),
    ) as server:
        yield server


@contextlib.contextmanager
def frozen(process: RedisProcess) -> Iterator[None]:
    """Redis stopped (SIGSTOP): its connections stay open and nothing is answered."""
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.process.pid, signal.SIGCONT)


def op(seq: int, base: int, content: str) -> Message:
    return {"type": "op", "seq": seq, "base": base, "ops": [{"type": "Insert", "content": content}]}


def post(
    server: ServerProcess, doc: str, client: str, seq: int, base: int, content: str
) -> tuple[int, bytes]:
    body = {"client": client, "seq": seq, "base": base, "ops": [{"type": "Insert", "content": content}]}
    return http_post(f"{server.http_url}/docs/{doc}/ops", json.dumps(body).encode(), timeout=20)


def drain(raw: Raw, seconds: float) -> list[Message]:
    """What arrives on ``raw`` for a while, with a note of a close."""
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            got.append(raw.recv(timeout=max(0.01, deadline - time.monotonic())))
    except TimeoutError:
        pass
    except Exception as e:  # a close ends the drain
        got.append({"type": "closed", "detail": repr(e)[:120]})
    return got


def joined_late(writer: ServerProcess, reader: ServerProcess, doc: str, revs: int, client: str) -> Raw:
    """``revs`` ops committed through ``writer``, then ``client`` resumes on ``reader`` at that
    revision. ``reader`` opens the document only now: it holds the ops after the latest snapshot."""
    for seq in range(1, revs + 1):
        assert post(writer, doc, "w", seq, seq - 1, str(seq))[0] == 200
    raw = Raw(reader.ws_url, doc)
    raw.send({"type": "hello", "client": client, "rev": revs})
    assert raw.until("ready")["rev"] == revs
    return raw


def deafen(store: RedisProcess, listeners: int = 2) -> None:
    """Drop every process's pub/sub connection: what is committed next goes unheard for a while.

    Waits for ``listeners`` (p1 and p2) to be listening first: one still reconnecting after the
    last deafening would otherwise be left out, and hear what it must not."""
    with redis.Redis.from_url(store.url) as r:
        deadline = time.monotonic() + 10
        while len(r.client_list(_type="pubsub")) < listeners:
            assert time.monotonic() < deadline, "the servers never listened again"
            time.sleep(0.02)
        assert r.client_kill_filter(_type="pubsub") >= listeners


def through_acks(raw: Raw, acks: int, timeout: float = 10.0) -> list[Message]:
    """Every message up to and including the ``acks``-th ack (`Raw.until` would skip the others)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while sum(m["type"] == "ack" for m in got) < acks:
        got.append(raw.recv(timeout=max(0.01, deadline - time.monotonic())))
    return got


def kinds_of_rev(messages: list[Message], rev: int) -> list[str]:
    return [str(m["type"]) for m in messages if m.get("rev") == rev and m["type"] in ("op", "ack")]


def test_a_lost_commit_reply_is_answered_once_never_as_op_and_ack(
    store: RedisProcess, tmp_path: Path
) -> None:
    assert store.port is not None
    cutter = ReplyCutter(store.port, OK_REPLY)
    server = ServerProcess(cutter.url, tmp_path, extra_args=(*QUIET, "--head-check-seconds", "60"))
    doc = unique_doc("lost-reply")
    try:
        server.start()
        with Raw(server.ws_url, doc) as a, Raw(server.ws_url, doc) as b:
            a.hello("alice")
            b.hello("bob")
            a.send(op(1, 0, "hi"))
            got = drain(a, 3.0)
            assert cutter.cuts == 1, "the commit's reply was never cut"
            assert kinds_of_rev(got, 1) == [], f"revision 1 reached its submitter with its reply lost: {got}"
            assert [m.get("code") for m in got if m["type"] == "error"] == ["unavailable"], got
            assert b.until("op")["rev"] == 1  # the others learn it from the log
        # The submitter resumes: its op comes back in the replay (its ack), a resubmit is acked once.
        with Raw(server.ws_url, doc) as again:
            again.send({"type": "hello", "client": "alice", "rev": 0})
            replayed = again.until("op")
            assert (replayed["client"], replayed["seq"], replayed["rev"]) == ("alice", 1, 1)
            again.until("ready")
            again.send(op(1, 0, "hi"))
            assert again.until("ack")["rev"] == 1
        assert document(server.http_url, doc)["text"] == "hi"
        assert_verified(server.http_url, doc)
    finally:
        server.stop()
        cutter.close()


def test_a_silent_redis_gets_unavailable_and_the_op_counts_once(
    store: RedisProcess, p1: ServerProcess
) -> None:
    doc = unique_doc("silent")
    with Raw(p1.ws_url, doc) as a:
        a.hello("alice")
        with frozen(store):
            a.send(op(1, 0, "x"))
            error = a.error(timeout=10)
            assert (error["code"], error["seq"]) == ("unavailable", 1), error
            assert a.closed_with(10) == 1013
            assert p1.healthz() == 503
    # Redis ran the commit when it woke: the resubmission is acknowledged with that revision.
    with Raw(p1.ws_url, doc) as again:
        again.send({"type": "hello", "client": "alice", "rev": 0})
        again.until("ready")
        again.send(op(1, 0, "x"))
        assert again.until("ack")["rev"] == 1
    assert document(p1.http_url, doc)["text"] == "x"


def test_a_fetch_while_redis_is_silent_is_answered_unavailable(
    store: RedisProcess, p1: ServerProcess, p2: ServerProcess
) -> None:
    # p2 holds the ops after the latest snapshot only (revision 4): a fetch from 1 reads the log
    with joined_late(p1, p2, unique_doc("fetch"), 5, "reader") as a:
        with frozen(store):
            a.send({"type": "fetch", "from": 1, "to": 5})
            assert a.error(timeout=10)["code"] == "unavailable"
            assert a.closed_with(10) == 1013


def test_a_resume_on_a_process_that_has_not_heard_of_the_op_gets_an_ack(
    store: RedisProcess, p1: ServerProcess, p2: ServerProcess
) -> None:
    doc = unique_doc("resume-unheard")
    with Raw(p2.ws_url, doc) as watcher:
        watcher.hello("watcher")
        # alice is on p2 (a join reads the log's head, so she joins before her op is committed)
        with Raw(p2.ws_url, doc) as alice:
            alice.send({"type": "hello", "client": "alice", "rev": 0})
            ready = alice.until("ready")
            assert ready["rev"] == 0
            deafen(store)
            # alice's op is committed on p1 and her answer is lost; p2 does not hear of it
            status, body = post(p1, doc, "alice", 1, 0, "[a]")
            assert status == 200, body
            alice.send(op(1, 0, "[a]"))
            got = through_acks(alice, 1)
            assert kinds_of_rev(got, 1) == ["ack"], f"revision 1 reached its submitter as {got}"
        assert watcher.until("op")["rev"] == 1
    assert document(p2.http_url, doc)["text"] == "[a]"


def test_an_ack_answered_from_the_client_record_comes_after_the_ops_before_it(
    store: RedisProcess, p1: ServerProcess, p2: ServerProcess
) -> None:
    doc = unique_doc("record-ahead")
    with joined_late(p1, p2, doc, 6, "alice") as alice:  # p2 holds no op: a snapshot at 6
        deafen(store)
        # Two revisions p2 does not hear of: bob's, then alice's op made on revision 0
        assert post(p1, doc, "bob", 1, 6, "[b]")[0] == 200
        status, body = post(p1, doc, "alice", 1, 0, "[a]")
        assert status == 200, body
        # Resubmitted on p2: its base is older than the log holds, so the answer comes from
        # alice's record (revision 8), after revision 7, never before it.
        alice.send(op(1, 0, "[a]"))
        got = through_acks(alice, 1)
        assert [(m["type"], m["rev"]) for m in got] == [("op", 7), ("ack", 8)], got


def test_an_op_sent_twice_in_one_group_is_only_acked(store: RedisProcess, p1: ServerProcess) -> None:
    doc = unique_doc("repeat")
    with Raw(p1.ws_url, doc) as a, Raw(p1.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        frame = json.dumps(op(1, 0, "a"))
        with frozen(store):
            b.send(op(1, 0, "b"))  # bob's commit waits on the stopped Redis...
            time.sleep(0.1)
            a.send(frame)  # ...so alice's two frames queue up behind it and go in one group
            a.send(frame)
            time.sleep(0.2)
        assert b.until("ack")["rev"] == 1
        got = through_acks(a, 2)
        assert kinds_of_rev(got, 2) == ["ack", "ack"], f"revision 2 reached its submitter as {got}"
    assert document(p1.http_url, doc)["text"] == "ab"
    assert_verified(p1.http_url, doc)


def test_a_log_back_with_another_history_is_never_adopted(tmp_path: Path) -> None:
    other = redis_process(tmp_path / "redis")
    q1 = ServerProcess(other.url, tmp_path / "q1", extra_args=(*QUIET, "--head-check-seconds", "0.3"))
    q2 = ServerProcess(other.url, tmp_path / "q2", extra_args=QUIET)
    doc = "forked"
    try:
        q1.start()
        q2.start()
        with Raw(q1.ws_url, doc) as a:
            a.hello("alice")
            for seq, text in enumerate(["0123456789", "ab", "cd"], 1):
                a.send(op(seq, seq - 1, text))
                a.until("ack")
            with redis.Redis.from_url(other.url) as r:
                r.flushall()  # Redis back without its data...
            for seq in range(1, 6):  # ...and another process commits a history of its own
                assert post(q2, doc, "zed", seq, seq - 1, "q")[0] == 200
            # q1 finds its head is not in the log: it closes its connections to reload
            assert a.closed_with(10) == 1013
        with Raw(q1.ws_url, doc) as again:
            assert again.hello("alice")["text"] == "qqqqq"
            again.send({"type": "op", "seq": 4, "base": 5, "ops": [{"type": "Delete", "length": 5}]})
            assert again.until("ack")["rev"] == 6
        assert document(q2.http_url, doc)["text"] == ""
        assert_verified(q2.http_url, doc)
    finally:
        q1.stop()
        q2.stop()
        other.stop()


def test_stopping_the_server_answers_a_waiting_http_submit_503(store: RedisProcess, tmp_path: Path) -> None:
    server = ServerProcess(store.url, tmp_path, extra_args=(*QUIET, "--redis-timeout", "60"))
    server.start()
    answers: list[tuple[int, bytes]] = []
    doc = unique_doc("shutdown")
    try:
        assert post(server, doc, "h", 1, 0, "a")[0] == 200
        with frozen(store):
            request = threading.Thread(target=lambda: answers.append(post(server, doc, "h", 2, 1, "b")))
            request.start()
            time.sleep(0.3)  # the submit waits on the stopped Redis
            assert server.process is not None
            server.process.terminate()
            request.join(20)
        assert answers, "the HTTP submit got no answer"
        status, body = answers[0]
        assert status == 503 and json.loads(body)["code"] == "unavailable", answers
    finally:
        server.stop()


class Listener:
    """A session as the document sees one: what it is sent, and whether it was closed."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.rev = 0
        self.sent: list[str] = []
        self.closed = False

    def deliver(self, text: str, rev: int | None = None) -> None:
        self.sent.append(text)
        if rev is not None:
            self.rev = rev

    def unavailable(self) -> None:
        self.closed = True


def test_a_stopped_document_answers_everything_waiting(store: RedisProcess) -> None:
    """Shutdown in any ASGI server: submissions queued or in their commit, and a hello, get
    `unavailable` instead of waiting forever."""

    async def scenario() -> tuple[list[Ack | Error | None], Listener]:
        ops = RedisOpStore(store.url, timeout=60)
        doc = Document(unique_doc("stop"), ops, Settings(), Metrics(), lambda name, frame: None)
        await doc.load()
        doc.start()
        session = Listener("alice")
        try:
            loop = asyncio.get_running_loop()
            taken: asyncio.Future[Error | None] = loop.create_future()
            queued: asyncio.Future[Error | None] = loop.create_future()
            with frozen(store):
                committing = Submission("alice", 1, 0, (Insert("a"),), origin=session)
                doc.put(committing)
                doc.put(Join(Listener("bob"), None, taken))  # taken by the task with the submission
                await asyncio.sleep(0.2)  # in its commit, on the stopped Redis
                waiting = Submission("alice", 2, 0, (Insert("b"),))
                doc.put(waiting)
                doc.put(Join(Listener("carol"), None, queued))
                await doc.stop()
                return [
                    committing.result.result(),
                    waiting.result.result(),
                    taken.result(),
                    queued.result(),
                ], session
        finally:
            await ops.close()

    answers, session = run(scenario())
    for answer in answers:
        assert isinstance(answer, Error) and answer.code == "unavailable", answer
    assert session.closed and '"code":"unavailable"' in session.sent[-1], session.sent


def test_a_join_sees_every_op_acknowledged_before_it_whichever_process_committed_it(
    store: RedisProcess, p1: ServerProcess, p2: ServerProcess
) -> None:
    doc = unique_doc("join-sees")
    with Raw(p2.ws_url, doc) as watcher:
        watcher.hello("watcher")  # p2 holds the document open
        deafen(store)
        status, body = post(p1, doc, "alice", 1, 0, "[a]")
        assert status == 200, body  # acknowledged; p2 has not heard of it
        with Raw(p2.ws_url, doc) as late:
            snapshot = late.hello("late")
            assert (snapshot["type"], snapshot["rev"], snapshot["text"]) == ("snapshot", 1, "[a]")
