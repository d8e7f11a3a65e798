"""Connections cut at the worst moments, and notifications between processes lost.

Spoken at the wire level, so each cut lands exactly where it is meant to: before an op is sent,
after it is committed but before its ack is read, in the middle of a replay. Two server processes
share one Redis; clients move between them as a reconnecting client behind a load balancer would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from tandem.ot.operation import Delete, Insert, Retain, apply
from tests.support import Deployment, Message, Raw, assert_verified, cut, document, http_get

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # A long head check, so a lost notification can only be repaired from the gap it leaves.
    with Deployment(tmp_path_factory.mktemp("cuts"), 2, extra_args=("--head-check-seconds", "60")) as d:
        yield d


def insert_at_end(text: str, content: str) -> list[dict[str, object]]:
    ops: list[dict[str, object]] = [{"type": "Retain", "length": len(text)}] if text else []
    return [*ops, {"type": "Insert", "content": content}]


def wait_for_rev(http_url: str, doc: str, rev: int, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (state := document(http_url, doc))["rev"] < rev:
        assert time.monotonic() < deadline, f"{doc} stayed at rev {state['rev']}, expected {rev}"
        time.sleep(0.02)
    return state


def test_cut_after_commit_before_ack_is_acknowledged_once(deployment: Deployment) -> None:
    doc = "cut-ack"
    a_url, b_url = deployment.ws_urls
    raw = Raw(a_url, doc)
    raw.hello("alice")
    raw.send({"type": "op", "seq": 1, "base": 0, "ops": insert_at_end("", "[alice-1]")})
    wait_for_rev(deployment.http_url, doc, 1)
    cut(raw)  # committed; the ack is never read

    with Raw(b_url, doc) as again:
        again.send({"type": "hello", "client": "alice", "rev": 0})
        replayed = again.until("op")
        assert (replayed["client"], replayed["seq"], replayed["rev"]) == ("alice", 1, 1)
        again.until("ready")
        # A client that missed the replay resubmits unchanged; exactly-once answers with the original.
        again.send({"type": "op", "seq": 1, "base": 0, "ops": insert_at_end("", "[alice-1]")})
        ack = again.until("ack")
        assert (ack["rev"], ack["hash"]) == (1, replayed["hash"])
    assert document(deployment.http_url, doc)["text"] == "[alice-1]"
    assert_verified(deployment.http_url, doc)


def test_cut_before_send_then_resubmit_on_a_stale_base(deployment: Deployment) -> None:
    doc = "cut-send"
    a_url, b_url = deployment.ws_urls
    with Raw(a_url, doc) as raw:
        raw.hello("offline")
        cut(raw)  # gone before its edit was sent
    with Raw(b_url, doc) as other:
        other.hello("online")
        text = ""
        for seq in range(1, 4):
            other.send({"type": "op", "seq": seq, "base": seq - 1, "ops": insert_at_end(text, f"<{seq}>")})
            other.until("ack")
            text += f"<{seq}>"
    with Raw(b_url, doc) as back:
        back.send({"type": "hello", "client": "offline", "rev": 0})
        assert [back.until("op")["rev"] for _ in range(3)] == [1, 2, 3]
        back.until("ready")
        # Its edit was made on revision 0: the server moves it past the three ops it did not see.
        back.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "[offline]"}]})
        assert back.until("ack")["rev"] == 4
    assert document(deployment.http_url, doc)["text"] == "[offline]<1><2><3>"
    assert_verified(deployment.http_url, doc)


def test_cut_mid_replay_resumes_where_it_stopped(deployment: Deployment) -> None:
    doc = "cut-replay"
    total = 180  # within the per-connection rate limit
    with Raw(deployment.ws_urls[0], doc) as writer:
        writer.hello("writer")
        text = ""
        for seq in range(1, total + 1):
            writer.send({"type": "op", "seq": seq, "base": seq - 1, "ops": insert_at_end(text, f"{seq},")})
            writer.until("ack")
            text += f"{seq},"
    replica, rev = "", 0
    hashes: dict[int, str] = {}
    for url in (deployment.ws_urls[1], deployment.ws_urls[0], deployment.ws_urls[1]):
        raw = Raw(url, doc)
        raw.send({"type": "hello", "client": "reader", "rev": rev})
        for _ in range(70):  # a part of the replay, then the connection drops
            m = raw.recv()
            if m["type"] == "ready":
                break
            assert m["type"] == "op" and m["rev"] == rev + 1, f"replay out of order at {rev}: {m}"
            replica = apply(replica, _ops(m))
            rev = m["rev"]
            hashes[rev] = m["hash"]
        cut(raw)
    head = document(deployment.http_url, doc)
    assert (rev, replica) == (total, text) == (head["rev"], head["text"])
    assert hashes[total] == head["hash"]
    assert_verified(deployment.http_url, doc)


def _ops(message: Message) -> tuple[Insert | Retain | Delete, ...]:
    def component(c: Message) -> Insert | Retain | Delete:
        match c["type"]:
            case "Retain":
                return Retain(c["length"])
            case "Delete":
                return Delete(c["length"])
        return Insert(c["content"])

    return tuple(component(c) for c in message["ops"])


def metric(http_url: str, name: str) -> float:
    status, body = http_get(f"{http_url}/metrics")
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def _pubsub_clients(url: str) -> set[int]:
    with redis.Redis.from_url(url) as r:
        return {int(c["id"]) for c in r.client_list(_type="pubsub")}


def wait_resubscribed(url: str, doc: str, killed: set[int], timeout: float = 20.0) -> None:
    """Until both processes listen again on new connections, and the same ones a second later
    (a connection reopened by the client library alone is closed by the listener soon after)."""
    deadline = time.monotonic() + timeout
    previous: set[int] = set()
    while True:
        assert time.monotonic() < deadline, "the processes never subscribed again"
        current = _pubsub_clients(url) - killed
        if len(current) == 2 and current == previous and _subscribers(url, doc) == 2:
            return
        previous = current
        time.sleep(1.0 if len(current) == 2 else 0.05)


def _subscribers(url: str, doc: str) -> int:
    with redis.Redis.from_url(url) as r:
        return int(r.pubsub_numsub(f"tandem:{{{doc}}}:events")[0][1])


def test_lost_notification_is_repaired_from_the_log(deployment: Deployment) -> None:
    doc = "lost-note"
    a_url, b_url = deployment.ws_urls
    with Raw(a_url, doc) as writer, Raw(b_url, doc) as reader:
        writer.hello("w")
        reader.hello("r")
        wait_subscribed = time.monotonic() + 10
        while _subscribers(deployment.redis_url, doc) < 2:
            assert time.monotonic() < wait_subscribed, "both processes never subscribed"
            time.sleep(0.02)
        killed = _pubsub_clients(deployment.redis_url)
        with redis.Redis.from_url(deployment.redis_url) as r:
            assert r.client_kill_filter(_type="pubsub") >= 2
        # Published while no process listens: this notification is lost for good.
        writer.send({"type": "op", "seq": 1, "base": 0, "ops": insert_at_end("", "[lost]")})
        writer.until("ack")
        # The processes notice the dropped connection and subscribe anew after a pause.
        wait_resubscribed(deployment.redis_url, doc, killed)
        writer.send({"type": "op", "seq": 2, "base": 1, "ops": insert_at_end("[lost]", "[heard]")})
        writer.until("ack")
        first, second = reader.until("op"), reader.until("op")
        assert [(first["rev"], first["seq"]), (second["rev"], second["seq"])] == [(1, 1), (2, 2)]
        assert reader.alive()
    assert metric(deployment.servers[1].http_url, "tandem_gap_repairs_total") >= 1
    assert document(deployment.http_url, doc)["text"] == "[lost][heard]"
    assert_verified(deployment.http_url, doc)


def test_repeated_submission_in_one_group_keeps_history_straight(deployment: Deployment) -> None:
    """An op sent twice in a burst (a resend racing its original) lands in one group commit; the
    repeat waits for a second round. Ops rebased later must see the history exactly once."""
    doc = "repeat-burst"
    url = deployment.ws_urls[0]
    with Raw(url, doc) as a, Raw(url, doc) as b, Raw(url, doc) as c:
        for raw, name in ((a, "a"), (b, "b"), (c, "c")):
            raw.hello(name)
        op = json.dumps({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "a"}]})
        a.conn.send(op)
        a.conn.send(op)
        a.conn.send(op)
        assert a.until("ack")["rev"] == 1
        c.send({"type": "op", "seq": 1, "base": 1, "ops": insert_at_end("a", "c")})
        assert c.until("ack")["rev"] == 2
        # b made its edit on revision 1 ("a"): it goes after "a", and left of the later "c".
        b.send({"type": "op", "seq": 1, "base": 1, "ops": insert_at_end("a", "b")})
        assert b.until("ack")["rev"] == 3
    assert document(deployment.http_url, doc)["text"] == "abc"
    assert_verified(deployment.http_url, doc)
