"""Crashes and restarts: exactly-once across a kill -9, resume from the log, and from a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Raw, RedisProcess, ServerProcess, assert_verified, document


def ins(text: str, at: int) -> list[dict[str, object]]:
    return ([{"type": "Retain", "length": at}] if at else []) + [{"type": "Insert", "content": text}]


def op(seq: int, base: int, ops: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "op", "seq": seq, "base": base, "ops": ops}


@pytest.fixture(scope="module")
def server(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Snapshots every 5 revisions and 2 revisions of log kept before the latest one.
    process = ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("restart"),
        extra_args=(
            "--log-level",
            "warning",
            "--snapshot-interval",
            "5",
            "--log-retention",
            "2",
            "--head-check-seconds",
            "0.3",
        ),
    )
    process.start()
    yield process
    process.stop()


def test_an_op_resubmitted_after_a_kill_is_applied_once(server: ServerProcess, doc: str) -> None:
    with Raw(server.ws_url, doc) as a:
        a.hello("a")
        a.send(op(1, 0, ins("x", 0)))
        a.until("ack")
        a.send(op(2, 1, ins("y", 1)))
        a.until("ack")  # committed, but say the ack was lost: the server dies
        server.kill()
    server.start()
    with Raw(server.ws_url, doc) as a:
        a.send({"type": "hello", "client": "a", "rev": 1})
        own = a.recv()  # the replay carries the op in flight: that is its acknowledgment
        assert (own["type"], own["rev"], own["client"], own["seq"]) == ("op", 2, "a", 2)
        assert a.recv() == {"type": "ready", "rev": 2}
        a.send(op(2, 1, ins("y", 1)))  # resubmitted anyway: acked with the original revision
        assert a.recv() == {"type": "ack", "seq": 2, "rev": 2, "hash": own["hash"]}
        a.send(op(3, 2, ins("z", 2)))
        server.kill()  # with seq 3 in flight, committed or not
    server.start()
    with Raw(server.ws_url, doc) as a:
        a.send({"type": "hello", "client": "a", "rev": 2})
        replay = []
        while (message := a.recv())["type"] != "ready":
            replay.append(message)
        a.send(op(3, 2, ins("z", 2)))
        ack = a.until("ack")
        assert ack["rev"] == 3
        assert [m["seq"] for m in replay] in ([], [3])
    assert document(server.http_url, doc)["text"] == "xyz"
    assert_verified(server.http_url, doc)


def test_resume_from_the_log_after_a_restart(server: ServerProcess, doc: str) -> None:
    with Raw(server.ws_url, doc) as a:
        a.hello("a")
        for seq in range(1, 4):
            a.send(op(seq, seq - 1, ins(str(seq), seq - 1)))
            a.until("ack")
    server.kill()
    server.start()
    with Raw(server.ws_url, doc) as b:
        b.send({"type": "hello", "client": "b", "rev": 1})
        assert [(m["type"], m["rev"]) for m in (b.recv(), b.recv(), b.recv())] == [
            ("op", 2),
            ("op", 3),
            ("ready", 3),
        ]


def test_resume_falls_back_to_a_snapshot_when_the_log_is_trimmed(server: ServerProcess, doc: str) -> None:
    text = "abcdefghijkl"
    with Raw(server.ws_url, doc) as a:
        a.hello("a")
        for i, ch in enumerate(text):
            a.send(op(i + 1, i, ins(ch, i)))
            a.until("ack")
    server.stop()
    server.start()
    with Raw(server.ws_url, doc) as b:
        b.send({"type": "hello", "client": "b", "rev": 1})
        snapshot = b.recv()
        assert snapshot["type"] == "snapshot" and (snapshot["rev"], snapshot["text"]) == (12, text)
        assert b.recv() == {"type": "ready", "rev": 12}
        b.send({"type": "hello", "client": "b", "rev": 11})
    with Raw(server.ws_url, doc) as c:
        c.send({"type": "hello", "client": "c", "rev": 9})  # still in the log: replayed
        assert [m["rev"] for m in (c.recv(), c.recv(), c.recv())] == [10, 11, 12]
    assert_verified(server.http_url, doc)


def test_a_fetch_the_trimmed_log_cannot_answer_is_not_found(server: ServerProcess, doc: str) -> None:
    with Raw(server.ws_url, doc) as a:
        a.hello("a")
        for i in range(12):
            a.send(op(i + 1, i, ins("q", i)))
            a.until("ack")
    server.stop()
    server.start()
    with Raw(server.ws_url, doc) as b:
        b.hello("b")
        b.send({"type": "fetch", "from": 1, "to": 3})
        error = b.recv()
        assert error["type"] == "error" and error["code"] == "not_found"


def test_while_redis_is_down_an_op_is_unavailable_then_resubmitted(tmp_path: object, doc: str) -> None:
    from pathlib import Path

    from tests.support import redis_process

    root = Path(str(tmp_path))
    own = redis_process(root / "redis")
    server = ServerProcess(own.url, root / "server", extra_args=("--log-level", "error"))
    try:
        server.start()
        with Raw(server.ws_url, doc) as a:
            a.hello("a")
            own.kill()
            a.send(op(1, 0, ins("x", 0)))
            error = a.recv()
            assert (error["type"], error["code"], error["seq"]) == ("error", "unavailable", 1)
            assert a.closed_with() == 1013
        own.start()
        with Raw(server.ws_url, doc) as a:
            a.send({"type": "hello", "client": "a", "rev": 0})
            assert a.recv() == {"type": "ready", "rev": 0}, "nothing was committed"
            a.send(op(1, 0, ins("x", 0)))
            assert a.until("ack")["rev"] == 1
    finally:
        server.stop()
        own.stop()


def test_when_redis_loses_acknowledged_ops_clients_are_told_not_reset(
    server: ServerProcess, redis: RedisProcess, doc: str
) -> None:
    import redis as redis_sync

    from tandem.server.store.redis import Keys

    with Raw(server.ws_url, doc) as a:
        a.hello("a")
        for i in range(3):
            a.send(op(i + 1, i, ins("k", i)))
            a.until("ack")
        client = redis_sync.Redis.from_url(redis.url)
        try:
            client.delete(*Keys(doc).commit_keys())  # as a Redis restored from an old backup would
        finally:
            client.close()
        assert a.closed_with(timeout=15) == 1013  # the periodic head check notices
    with Raw(server.ws_url, doc) as a:
        error = a.hello("a", rev=3)
        assert error["type"] == "error" and error["code"] == "rev_ahead"
