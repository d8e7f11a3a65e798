"""Change hooks against a real redis-server: every revision delivered, in order per document,
through failures of the callback, of the webhook receiver (500s, kill -9) and of the runner
itself (kill -9 mid-delivery), with duplicates only of the deliveries in flight at a crash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tandem.ot.integrity import genesis_hash
from tandem.ot.operation import Insert, Operation, Retain
from tandem.ot.protocol import Snapshot
from tandem.server.embed import Tandem
from tandem.server.hooks import ChangeEvent, Hook, HookRunner, run_hooks
from tandem.server.settings import Settings
from tandem.server.store.base import StoredOp
from tandem.server.store.redis import Keys, RedisOpStore
from tandem.server.webhook import sign, verify, webhook
from tests.hooks.receiver import Receiver, read_record
from tests.server.store_contract import chain
from tests.support import RedisProcess, ServerProcess, free_port, http_post, redis_process, run, unique_doc

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret"
FAST = Settings(hook_scan_seconds=1.0, hook_retry_max_seconds=0.5, hook_batch=5)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test alone: a runner reads every document of its Redis."""
    process = redis_process(tmp_path / "redis")
    try:
        yield process
    finally:
        process.stop()


class Committer:
    """Commits one-character inserts to documents, with the right hashes; revision r is seq r."""

    def __init__(self, store: RedisOpStore) -> None:
        self.store = store
        self.heads: dict[str, tuple[int, str]] = {}
        self.records: dict[str, list[StoredOp]] = {}

    async def commit(self, doc: str, n: int = 1, snapshot: bool = False) -> None:
        rev, prev = self.heads.get(doc, (0, genesis_hash(doc)))
        steps: list[tuple[str, int, Operation]] = [
            ("c", rev + i + 1, ((Retain(rev + i),) if rev + i else ()) + (Insert("x"),)) for i in range(n)
        ]
        records = chain(doc, steps, start_rev=rev, start_hash=prev)
        head = rev + n
        snap = Snapshot(rev=head, text="x" * head, hash=records[-1].op.hash) if snapshot else None
        assert (await self.store.commit(doc, rev, records, snap)).status == "ok"
        self.heads[doc] = (head, records[-1].op.hash)
        self.records.setdefault(doc, []).extend(records)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def collector() -> tuple[dict[str, list[ChangeEvent]], Callable[[list[ChangeEvent]], Awaitable[None]]]:
    got: dict[str, list[ChangeEvent]] = {}

    async def deliver(events: list[ChangeEvent]) -> None:
        assert len({e.doc for e in events}) == 1
        got.setdefault(events[0].doc, []).extend(events)

    return got, deliver


def complete(got: dict[str, list[int]], want: dict[str, int]) -> bool:
    return all(set(got.get(doc, ())) >= set(range(1, n + 1)) for doc, n in want.items())


def test_a_callback_gets_every_revision_of_every_document_in_order(redis: RedisProcess) -> None:
    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        await c.commit("before", 12)  # committed while no runner listened
        got, deliver = collector()
        async with run_hooks(store, FAST, [Hook("index", deliver)]):
            for _ in range(20):
                await c.commit("one")
                await c.commit("two", 2)
            await until(
                lambda: complete(
                    {d: [e.rev for e in v] for d, v in got.items()}, {"before": 12, "one": 20, "two": 40}
                ),
                20,
                "every revision",
            )
        for doc, events in got.items():
            assert [e.rev for e in events] == list(range(1, c.heads[doc][0] + 1)), doc
            for event, record in zip(events, c.records[doc], strict=True):
                assert (event.client, event.seq, event.ops, event.hash, event.gap) == (
                    record.op.client,
                    record.op.seq,
                    record.op.ops,
                    record.op.hash,
                    0,
                )
        await store.close()

    run(scenario(), 40)


def test_a_failing_callback_is_retried_and_nothing_is_skipped(redis: RedisProcess) -> None:
    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        accepted: dict[str, list[int]] = {}
        calls = 0

        async def deliver(events: list[ChangeEvent]) -> None:
            nonlocal calls
            calls += 1
            if calls % 3 != 0:  # two of every three deliveries fail
                raise RuntimeError("search index down")
            accepted.setdefault(events[0].doc, []).extend(e.rev for e in events)

        async with run_hooks(store, FAST, [Hook("flaky", deliver)]) as runner:
            await c.commit("a", 7)
            await c.commit("b", 11)
            await until(lambda: complete(accepted, {"a": 7, "b": 11}), 30, "every revision")
            assert runner is not None and runner.stats["failures"] > 0
        # acknowledged exactly once each, in order: a failure is redelivered, never skipped
        assert accepted == {"a": list(range(1, 8)), "b": list(range(1, 12))}
        await store.close()

    run(scenario(), 40)


def test_two_runners_share_the_work_in_order_without_duplicates(redis: RedisProcess) -> None:
    async def scenario() -> None:
        stores = [RedisOpStore(redis.url) for _ in range(3)]
        c = Committer(stores[0])
        got: dict[str, list[int]] = {}

        async def deliver(events: list[ChangeEvent]) -> None:
            await asyncio.sleep(0.01)  # long enough for the other runner to try the same document
            got.setdefault(events[0].doc, []).extend(e.rev for e in events)

        runners = [HookRunner(s, [Hook("shared", deliver)], FAST) for s in stores[1:]]
        for r in runners:
            await r.start()
        for _ in range(15):
            for doc in ("p", "q", "r"):
                await c.commit(doc)
        await until(lambda: complete(got, {"p": 15, "q": 15, "r": 15}), 20, "every revision")
        for r in runners:
            await r.stop()
        assert got == {doc: list(range(1, 16)) for doc in ("p", "q", "r")}
        for s in stores:
            await s.close()

    run(scenario(), 40)


def test_trimmed_revisions_are_reported_as_a_gap(redis: RedisProcess) -> None:
    async def scenario() -> None:
        store = RedisOpStore(redis.url, log_retention=2)
        c = Committer(store)
        await c.commit("t", 10, snapshot=True)
        await c.commit("t", 11, snapshot=True)  # keeps the log after the snapshot at 10: 11..21
        got, deliver = collector()
        async with run_hooks(store, FAST, [Hook("late", deliver)]):
            await until(lambda: len(got.get("t", ())) == 11, 20, "the kept revisions")
        assert [(e.rev, e.gap) for e in got["t"]] == [(11, 10)] + [(r, 0) for r in range(12, 22)]
        await store.close()

    run(scenario(), 40)


def test_hook_start_new_skips_the_history_before_the_hook_heard_of_a_document(redis: RedisProcess) -> None:
    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        await c.commit("old", 5)
        got, deliver = collector()
        settings = Settings(hook_start="new", hook_scan_seconds=1.0)
        async with run_hooks(store, settings, [Hook("fresh", deliver)]) as runner:
            assert runner is not None
            await until(lambda: runner.stats["scans"] >= 1, 10, "a scan")
            await c.commit("old", 3)
            await c.commit("born", 4)
            await until(
                lambda: len(got.get("old", ())) == 3 and len(got.get("born", ())) == 4, 20, "new revisions"
            )
        assert [e.rev for e in got["old"]] == [6, 7, 8]
        assert [e.rev for e in got["born"]] == [1, 2, 3, 4]
        await store.close()

    run(scenario(), 40)


def test_the_webhook_signs_each_delivery_and_the_receiver_checks_it(redis: RedisProcess) -> None:
    body, ts = b'{"hook":"h"}', str(int(time.time()))
    assert verify(SECRET, body, ts, sign(SECRET, ts, body))
    assert not verify(SECRET, body + b" ", ts, sign(SECRET, ts, body))  # tampered body
    assert not verify("other", body, ts, sign(SECRET, ts, body))
    assert not verify(SECRET, body, str(int(ts) - 3600), sign(SECRET, str(int(ts) - 3600), body))  # replayed

    receiver = Receiver(SECRET).start()
    wrong = Receiver("not-the-secret").start()

    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        await c.commit("w1", 9)
        hooks = [
            webhook("audit", receiver.url, SECRET, timeout=2.0),
            webhook("wrong", wrong.url, SECRET, timeout=2.0),
        ]
        async with run_hooks(store, FAST, hooks):
            await c.commit("w2", 6)
            await until(lambda: complete(receiver.accepted(), {"w1": 9, "w2": 6}), 20, "every revision")
            await until(lambda: wrong.bad_signatures >= 2, 10, "refused deliveries")
        assert receiver.accepted() == {"w1": list(range(1, 10)), "w2": list(range(1, 7))}
        assert receiver.bad_signatures == 0
        assert wrong.accepted() == {}  # 401 is not an acknowledgment: still pending there
        pending = await store.redis.xpending(Keys("w1").log, "wrong")
        assert pending["pending"] > 0
        await store.close()

    try:
        run(scenario(), 40)
    finally:
        receiver.stop()
        wrong.stop()


def test_a_receiver_answering_500_for_a_while_gets_everything_after(redis: RedisProcess) -> None:
    receiver = Receiver(SECRET).start()
    receiver.fail_until = time.monotonic() + 1.5

    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        async with run_hooks(store, FAST, [webhook("audit", receiver.url, SECRET, timeout=2.0)]) as runner:
            for _ in range(8):
                await c.commit("f1", 2)
                await c.commit("f2", 3)
            await until(lambda: complete(receiver.accepted(), {"f1": 16, "f2": 24}), 30, "every revision")
            assert runner is not None and runner.stats["failures"] > 0
        # what was answered 2xx holds each revision exactly once, in order
        assert receiver.accepted() == {"f1": list(range(1, 17)), "f2": list(range(1, 25))}
        await store.close()

    try:
        run(scenario(), 40)
    finally:
        receiver.stop()


def _start(args: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _strictly_increasing(seq: list[int]) -> bool:
    return all(a < b for a, b in zip(seq, seq[1:], strict=False))


@pytest.mark.slow
def test_kill_9_of_the_runner_during_delivery_loses_nothing(redis: RedisProcess) -> None:
    docs = {"k1": 30, "k2": 30, "k3": 30}
    receiver = Receiver(SECRET, delay=0.15).start()

    async def commit_all() -> None:
        store = RedisOpStore(redis.url)
        c = Committer(store)
        for doc, n in docs.items():
            await c.commit(doc, n)
        await store.close()

    async def pending_revs() -> dict[str, set[int]]:
        store = RedisOpStore(redis.url)
        out = {}
        for doc in docs:
            entries = await store.redis.xpending_range(Keys(doc).log, "audit", min="-", max="+", count=1000)
            out[doc] = {int(e["message_id"].split(b"-")[0]) for e in entries}
        await store.close()
        return out

    run(commit_all())
    worker_args = ["tests.hooks.hook_worker", redis.url, receiver.url, SECRET, "4"]
    worker = _start(worker_args)
    try:
        deadline = time.monotonic() + 20
        while len(receiver.deliveries) < 6:
            assert time.monotonic() < deadline, "no deliveries"
            time.sleep(0.02)
        worker.kill()  # kill -9, mid-delivery: the receiver is still answering
        _stop(worker)
        killed_at = time.monotonic()
        in_flight = run(pending_revs())  # delivered (or being delivered) but never acknowledged
        time.sleep(0.3)  # the requests in flight reach the receiver's answer
        worker = _start(worker_args)
        deadline = time.monotonic() + 30
        while not complete(receiver.accepted(), docs):
            assert time.monotonic() < deadline, f"not every revision delivered: {receiver.accepted()}"
            time.sleep(0.05)
    finally:
        _stop(worker)
        receiver.stop()

    assert any(in_flight.values()), "the kill landed between deliveries"
    accepted = receiver.accepted()
    for doc, n in docs.items():
        assert set(accepted[doc]) == set(range(1, n + 1)), doc  # none skipped
        duplicates = {rev for rev, k in Counter(accepted[doc]).items() if k > 1}
        assert duplicates <= in_flight[doc], (doc, duplicates, in_flight[doc])
        before = [r for d, revs, _, at in receiver.deliveries if d == doc and at < killed_at for r in revs]
        after = [r for d, revs, _, at in receiver.deliveries if d == doc and at >= killed_at for r in revs]
        assert _strictly_increasing(before) and _strictly_increasing(after), (before, after)
        if after:  # the restarted runner resumes at the first revision not acknowledged
            assert after[0] == min(in_flight[doc] or {max(before, default=0) + 1}), (doc, before, after)


@pytest.mark.slow
def test_kill_9_of_the_receiver_resumes_where_it_left_off(redis: RedisProcess, tmp_path: Path) -> None:
    docs = {"r1": 24, "r2": 24}
    record = tmp_path / "received.jsonl"
    port = free_port()
    receiver_args = ["tests.hooks.receiver", str(port), SECRET, str(record), "0.1"]
    url = f"http://127.0.0.1:{port}/hook"
    receiver = _start(receiver_args)

    def received() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for line in read_record(record):
            out.setdefault(line["doc"], []).extend(line["revs"])
        return out

    async def scenario() -> tuple[int, dict[str, list[int]]]:
        nonlocal receiver
        store = RedisOpStore(redis.url)
        c = Committer(store)
        settings = Settings(hook_scan_seconds=1.0, hook_retry_max_seconds=0.5, hook_batch=3)
        async with run_hooks(store, settings, [webhook("audit", url, SECRET, timeout=2.0)]) as runner:
            for doc, n in docs.items():
                await c.commit(doc, n)
            await until(lambda: len(read_record(record)) >= 4, 20, "first deliveries")
            receiver.kill()  # kill -9: answers in flight are lost
            _stop(receiver)
            lines_at_kill = len(read_record(record))
            await asyncio.sleep(1.0)  # deliveries fail meanwhile: connection refused
            receiver = _start(receiver_args)
            await until(lambda: complete(received(), docs), 30, "every revision")
            assert runner is not None and runner.stats["failures"] > 0
        await store.close()
        return lines_at_kill, received()

    try:
        lines_at_kill, got = run(scenario(), 60)
    finally:
        _stop(receiver)
    lines = read_record(record)
    for doc, n in docs.items():
        assert set(got[doc]) == set(range(1, n + 1)), doc
        before = [r for line in lines[:lines_at_kill] if line["doc"] == doc for r in line["revs"]]
        after = [r for line in lines[lines_at_kill:] if line["doc"] == doc for r in line["revs"]]
        assert _strictly_increasing(before) and _strictly_increasing(after), (before, after)
        # one delivery per document at a time: only the last one recorded may come again
        last: list[int] = next(
            (line["revs"] for line in reversed(lines[:lines_at_kill]) if line["doc"] == doc), []
        )
        duplicates = {rev for rev, k in Counter(got[doc]).items() if k > 1}
        assert duplicates <= set(last), (doc, duplicates, last)


@pytest.mark.slow
def test_on_a_cluster_every_document_on_every_master_is_delivered(tmp_path: Path) -> None:
    from tandem.testing.cluster import running_cluster

    docs = {f"cl-{i}": 3 + i % 4 for i in range(12)}  # spread over the masters by hash tag
    got, deliver = collector()

    def revs() -> dict[str, list[int]]:
        return {d: [e.rev for e in v] for d, v in got.items()}

    async def scenario(url: str) -> None:
        store = RedisOpStore(url, cluster=True)
        c = Committer(store)
        for doc in list(docs)[:6]:  # before the runner: found by the scan of every master
            await c.commit(doc, docs[doc])
        async with run_hooks(store, FAST, [Hook("index", deliver)]):
            for doc in list(docs)[6:]:  # after: heard of by pub/sub
                await c.commit(doc, docs[doc])
            await until(lambda: complete(revs(), docs), 30, "every revision")
        assert revs() == {doc: list(range(1, n + 1)) for doc, n in docs.items()}
        await store.close()

    with running_cluster(tmp_path / "cluster") as cluster:
        run(scenario(cluster.url), 60)


def test_the_settings_make_the_webhook_of_tandem_serve() -> None:
    from tandem.server.hooks import hooks_from_settings
    from tandem.server.settings import load

    settings = load(
        {"webhook_url": "http://127.0.0.1:9/in", "hook_batch": "7"}, {"TANDEM_WEBHOOK_SECRET": "k"}
    )
    [hook] = hooks_from_settings(settings)
    assert (hook.name, settings.hook_batch) == ("webhook", 7)
    assert hooks_from_settings(Settings()) == []
    with pytest.raises(ValueError, match="webhook_secret"):
        Settings(webhook_url="http://127.0.0.1:9/in")
    with pytest.raises(ValueError, match="hook_start"):
        Settings(hook_start="middle")
    with pytest.raises(ValueError, match="http"):
        webhook("w", "ftp://example.com/", "k")
    with pytest.raises(ValueError, match="hook name"):
        Hook("no spaces", hooks_from_settings)  # type: ignore[arg-type]


def test_tandem_serve_delivers_its_commits_to_the_webhook_it_is_given(
    redis: RedisProcess, tmp_path: Path
) -> None:
    receiver = Receiver(SECRET).start()
    server = ServerProcess(
        redis.url,
        tmp_path,
        extra_args=("--log-level", "error", "--webhook-url", receiver.url, "--webhook-secret", SECRET),
    )
    try:
        server.start()
        doc = unique_doc("serve-hook")
        for seq in range(1, 6):
            body = json.dumps(
                {"client": "c", "seq": seq, "base": seq - 1, "ops": [{"type": "Insert", "content": "x"}]}
            )
            assert http_post(f"{server.http_url}/docs/{doc}/ops", body.encode())[0] == 200
        deadline = time.monotonic() + 20
        while receiver.accepted().get(doc) != [1, 2, 3, 4, 5]:
            assert time.monotonic() < deadline, receiver.accepted()
            time.sleep(0.05)
    finally:
        server.stop()
        receiver.stop()


def test_an_embedded_tandem_runs_the_hooks_it_is_given(redis: RedisProcess) -> None:
    got, deliver = collector()

    async def scenario() -> None:
        tandem = Tandem(Settings(redis_url=redis.url), hooks=[Hook("indexer", deliver)])
        doc = unique_doc("embedded-hook")
        async with tandem.running():
            transport = httpx.ASGITransport(app=tandem.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tandem") as client:
                for seq in range(1, 4):
                    body = {
                        "client": "c",
                        "seq": seq,
                        "base": seq - 1,
                        "ops": [{"type": "Insert", "content": "y"}],
                    }
                    assert (await client.post(f"/docs/{doc}/ops", json=body)).status_code == 200
            await until(
                lambda: [e.rev for e in got.get(doc, [])] == [1, 2, 3], 20, "the embedded hook's events"
            )

    run(scenario(), timeout=60)
