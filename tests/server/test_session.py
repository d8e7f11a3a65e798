"""Every message of the contract and every error code, over real WebSockets to `tandem serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tandem.ot.integrity import genesis_hash, next_hash
from tandem.ot.operation import Insert
from tandem.server.auth import issue_token
from tests.support import Raw, ServerProcess, document, http_get

INSERT = {"type": "Insert", "content": ""}


def ins(text: str, at: int = 0) -> list[dict[str, object]]:
    ops: list[dict[str, object]] = [{"type": "Retain", "length": at}] if at else []
    return ops + [{"type": "Insert", "content": text}]


def op(seq: int, base: int, ops: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "op", "seq": seq, "base": base, "ops": ops}


@pytest.fixture
def pair(tandem: ServerProcess, doc: str) -> Iterator[tuple[Raw, Raw]]:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("a")
        b.hello("b")
        yield a, b


def test_fresh_hello_gets_the_snapshot_then_ready(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.send({"type": "hello", "client": "a"})
        assert a.recv() == {"type": "snapshot", "rev": 0, "text": "", "hash": genesis_hash(doc)}
        assert a.recv() == {"type": "ready", "rev": 0}


def test_op_is_acked_to_its_sender_and_broadcast_to_the_others(pair: tuple[Raw, Raw], doc: str) -> None:
    a, b = pair
    a.send(op(1, 0, ins("a😀b")))
    expected_hash = next_hash(genesis_hash(doc), 1, "a", 1, (Insert("a😀b"),))
    assert a.recv() == {"type": "ack", "seq": 1, "rev": 1, "hash": expected_hash}
    received = b.recv()
    assert isinstance(received.pop("time"), int)  # the commit time (test_commit_time.py)
    assert received == {
        "type": "op",
        "rev": 1,
        "client": "a",
        "seq": 1,
        "ops": ins("a😀b"),
        "hash": expected_hash,
    }


def test_concurrent_inserts_at_one_place_put_the_later_commit_left(
    pair: tuple[Raw, Raw], tandem: ServerProcess, doc: str
) -> None:
    a, b = pair
    a.send(op(1, 0, ins("A")))
    a.until("ack")
    b.send(op(1, 0, ins("B")))  # made on revision 0, concurrent with A
    ack = b.until("ack")
    assert ack["rev"] == 2
    assert a.until("op")["ops"] == ins("B")
    assert document(tandem.http_url, doc)["text"] == "BA"


def test_a_resubmitted_op_is_acked_again_with_its_original_revision(
    pair: tuple[Raw, Raw], tandem: ServerProcess, doc: str
) -> None:
    a, b = pair
    a.send(op(1, 0, ins("x")))
    first = a.until("ack")
    a.send(op(1, 0, ins("x")))
    assert a.until("ack") == first
    a.send(op(2, 1, ins("y", 1)))
    assert a.until("ack")["rev"] == 2
    assert [m["rev"] for m in (b.until("op"), b.until("op"))] == [1, 2]  # the duplicate never reached b
    assert document(tandem.http_url, doc)["text"] == "xy"


def test_a_seq_below_the_last_committed_is_refused(pair: tuple[Raw, Raw]) -> None:
    a, _ = pair
    a.send(op(5, 0, ins("x")))
    a.until("ack")
    a.send(op(3, 1, ins("y")))
    error = a.recv()
    assert error["type"] == "error" and error["code"] == "bad_message" and error["seq"] == 3
    assert "below its last committed seq 5" in error["message"]


def test_resume_replays_the_missing_ops_then_ready(
    pair: tuple[Raw, Raw], tandem: ServerProcess, doc: str
) -> None:
    a, _ = pair
    for seq in range(1, 4):
        a.send(op(seq, seq - 1, ins(str(seq), seq - 1)))
        a.until("ack")
    with Raw(tandem.ws_url, doc) as c:
        c.send({"type": "hello", "client": "c", "rev": 1})
        assert [(m["type"], m["rev"]) for m in (c.recv(), c.recv(), c.recv())] == [
            ("op", 2),
            ("op", 3),
            ("ready", 3),
        ]


def test_resume_at_the_head_is_ready_at_once(pair: tuple[Raw, Raw], tandem: ServerProcess, doc: str) -> None:
    a, _ = pair
    a.send(op(1, 0, ins("x")))
    a.until("ack")
    with Raw(tandem.ws_url, doc) as c:
        c.send({"type": "hello", "client": "c", "rev": 1})
        assert c.recv() == {"type": "ready", "rev": 1}


def test_resume_from_the_future_is_rev_ahead(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as c:
        c.send({"type": "hello", "client": "c", "rev": 7})
        error = c.recv()
        assert error["code"] == "rev_ahead" and "7" in error["message"]
        assert c.alive()


def test_fetch_resends_committed_ops(pair: tuple[Raw, Raw]) -> None:
    a, _ = pair
    for seq in range(1, 4):
        a.send(op(seq, seq - 1, ins("z")))
        a.until("ack")
    a.send({"type": "fetch", "from": 2, "to": 3})
    assert [(m["type"], m["rev"]) for m in (a.recv(), a.recv())] == [("op", 2), ("op", 3)]
    a.send({"type": "fetch", "from": 3})
    assert a.recv()["rev"] == 3
    a.send({"type": "fetch", "from": 9})
    assert a.recv()["code"] == "rev_ahead"


def test_presence_reaches_the_others_and_is_cleared_when_its_client_leaves(
    tandem: ServerProcess, doc: str
) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        a.send(op(1, 0, ins("hi")))
        a.until("ack")
        with Raw(tandem.ws_url, doc) as b:
            b.hello("b")
            b.send({"type": "presence", "cursor": {"anchor": 1, "head": 1}, "user": {"name": "Bea"}})
            seen = a.until("presence")
            assert seen["client"] == "b" and seen["rev"] == 1 and seen["cursor"] == {"anchor": 1, "head": 1}
            assert seen["user"]["name"] == "Bea"
            a.send(op(2, 1, ins("Z")))
            a.until("ack")
            with Raw(tandem.ws_url, doc) as c:
                c.hello("c")
                late = c.until("presence")  # a newcomer learns the cursor, moved past later ops
                assert (late["client"], late["rev"]) == ("b", 2)
                assert late["cursor"] == {"anchor": 2, "head": 2}
        gone = a.until("presence")
        assert gone["client"] == "b" and gone["cursor"] is None


def test_ping_is_answered_before_and_after_hello(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.send({"type": "ping"})
        assert a.recv() == {"type": "pong"}
        a.hello("a")
        a.send({"type": "ping"})
        assert a.recv() == {"type": "pong"}


BAD_MESSAGES = [
    pytest.param({"type": "nope"}, "bad_message", id="unknown-type"),
    pytest.param({"type": "hello"}, "bad_message", id="hello-without-client"),
    pytest.param({"type": "hello", "client": "a b"}, "bad_message", id="bad-client-id"),
    pytest.param(op(1, 0, [{"type": "Insert", "content": ""}]), "bad_message", id="empty-insert"),
    pytest.param(op(1, 0, [{"type": "Retain", "length": 0}]), "bad_message", id="zero-retain"),
    pytest.param(op(0, 0, ins("x")), "bad_message", id="seq-zero"),
    pytest.param(op(1, 0, [{"type": "Delete", "length": 3}]), "bad_op", id="delete-past-end"),
    pytest.param(op(1, 9, ins("x")), "rev_ahead", id="base-ahead"),
    pytest.param(
        op(1, 0, [{"type": "Retain", "length": 1}, {"type": "Insert", "content": "x"}] * 30),
        "too_large",
        id="too-many-components",
    ),
    pytest.param(op(1, 0, ins("x" * 6000)), "too_large", id="doc-too-long"),
    pytest.param(
        '{"type":"op","seq":1,"base":0,"ops":[{"type":"Insert","content":"\\ud800"}]}',
        "bad_message",
        id="lone-surrogate",
    ),
    pytest.param([1, 2], "bad_message", id="array"),
]


@pytest.mark.parametrize(("message", "code"), BAD_MESSAGES)
def test_bad_messages_get_an_error_and_change_nothing(
    tandem: ServerProcess, doc: str, message: object, code: str
) -> None:
    with Raw(tandem.ws_url, doc) as a:
        if not (isinstance(message, dict) and message.get("type") == "hello"):
            a.hello("a")
        a.send(message if isinstance(message, str) else json.dumps(message))
        error = a.recv()
        assert error["type"] == "error" and error["code"] == code, error
        assert error["message"]
        assert a.alive(), "a bad message must not close the connection"
    assert document(tandem.http_url, doc)["rev"] == 0


def test_an_op_that_changes_nothing_is_committed_as_a_revision(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        a.send(op(1, 0, ins("x")))
        assert a.recv()["type"] == "ack"
        a.send(op(2, 1, [{"type": "Retain", "length": 1}]))
        ack = a.recv()
        assert ack["type"] == "ack" and ack["rev"] == 2, ack
    state = document(tandem.http_url, doc)
    assert (state["rev"], state["text"]) == (2, "x")


def test_messages_before_hello_and_a_second_hello_are_refused(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.send(op(1, 0, ins("x")))
        assert a.recv()["code"] == "bad_message"
        a.hello("a")
        a.send({"type": "hello", "client": "a"})
        assert "already" in a.recv()["message"]


def test_an_unreadable_frame_closes_with_4400_and_changes_nothing(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        a.send('{"type": "op", "seq": 1, "base": 0, "ops": [')
        assert a.closed_with() == 4400
    assert document(tandem.http_url, doc)["rev"] == 0


def test_a_frame_over_the_limit_closes_with_4413(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        a.send(json.dumps(op(1, 0, ins("x" * 70_000))))
        assert a.closed_with() == 4413
    assert document(tandem.http_url, doc)["rev"] == 0


def test_a_bad_document_id_is_refused(tandem: ServerProcess) -> None:
    with Raw(tandem.ws_url, "bad%20name") as a:
        assert a.recv()["code"] == "bad_message"
        assert a.closed_with() == 4400


# -- a server with a secret and a low rate limit -------------------------------------------------

SECRET = "a-test-secret-of-at-least-32-bytes!"


@pytest.fixture(scope="module")
def strict(redis: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("strict"),  # noqa: B009
        extra_args=("--log-level", "warning", "--ops-per-second", "2"),
        env={"TANDEM_SECRET": SECRET},
    )
    server.start()
    yield server
    server.stop()


def test_without_a_valid_token_hello_is_unauthorized(strict: ServerProcess, doc: str) -> None:
    with Raw(strict.ws_url, doc) as a:
        assert a.hello("a")["code"] == "unauthorized"
        forged = issue_token("another-secret-of-at-least-32-bytes", doc, "write", 60)
        assert a.hello("a", token=forged)["code"] == "unauthorized"
        assert a.hello("a", token=issue_token(SECRET, doc, "write", 60))["type"] == "snapshot"


def test_a_token_in_the_query_string_is_accepted(strict: ServerProcess, doc: str) -> None:
    token = issue_token(SECRET, doc, "write", 60)
    with Raw(strict.ws_url, doc, query=f"?token={token}") as a:
        assert a.hello("a")["type"] == "snapshot"


def test_a_read_token_may_not_write(strict: ServerProcess, doc: str) -> None:
    with Raw(strict.ws_url, doc) as a:
        a.hello("a", token=issue_token(SECRET, doc, "read", 60))
        a.send(op(1, 0, ins("x")))
        error = a.recv()
        assert error["code"] == "read_only" and error["seq"] == 1
    status, _ = http_get(f"{strict.http_url}/docs/{doc}")
    assert status == 401


def test_ops_over_the_rate_limit_are_refused(strict: ServerProcess, doc: str) -> None:
    with Raw(strict.ws_url, doc) as a:
        a.hello("a", token=issue_token(SECRET, doc, "write", 60))
        for seq in range(1, 6):
            a.send(op(seq, 0, ins("x")))
        answers = [a.recv() for _ in range(5)]
        limited = [m for m in answers if m["type"] == "error"]
        assert limited and all(m["code"] == "rate_limited" for m in limited)
        assert len([m for m in answers if m["type"] == "ack"]) <= 3


def test_graceful_shutdown_closes_clients_with_1012(
    redis: object, tmp_path_factory: pytest.TempPathFactory, doc: str
) -> None:
    server = ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("shutdown"),  # noqa: B009
        extra_args=("--log-level", "warning"),
    )
    server.start()
    try:
        with Raw(server.ws_url, doc) as a:
            a.hello("a")
            assert server.process is not None
            server.process.send_signal(2)  # Ctrl-C
            with pytest.raises(ConnectionClosed) as closed:
                a.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_a_receiver_that_falls_too_far_behind_is_closed_with_1013(
    redis: object, tmp_path_factory: pytest.TempPathFactory, doc: str
) -> None:
    server = ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("slow"),  # noqa: B009
        extra_args=(
            "--log-level",
            "warning",
            "--send-queue-limit",
            "4",
            "--max-frame-bytes",
            "200000",
            "--max-doc-length",
            "100000",
        ),
    )
    server.start()
    try:
        with Raw(server.ws_url, doc) as writer, Raw(server.ws_url, doc) as slow:
            writer.hello("w")
            slow.hello("slow")  # and then never reads: its socket and queue fill up
            length, closed = 0, False
            for seq in range(1, 400):
                ops = ([{"type": "Delete", "length": length}] if length else []) + ins("x" * 60_000)
                writer.send(op(seq, seq - 1, ops))
                writer.until("ack")
                length = 60_000
                _, body = http_get(f"{server.http_url}/metrics")
                if b"tandem_slow_receivers_total 0" not in body:
                    closed = True
                    break
            assert closed, "the slow receiver was never disconnected"
            assert slow.closed_with(timeout=30) == 1013
            assert writer.alive(), "a slow receiver must not hold up the others"
    finally:
        server.stop()
