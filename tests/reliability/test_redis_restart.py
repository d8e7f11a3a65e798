"""Redis killed (kill -9) and restarted from its append-only file under two server processes.

While Redis is gone the servers say so on /healthz and acknowledge nothing; once it is back they
resume, and every op acknowledged before the crash is still there, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import Deployment, Message, Raw, ServerProcess, assert_verified, cut, document, http_get

pytestmark = pytest.mark.slow
DOC = "redis-crash"


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def resume_answer(url: str, doc: str, rev: int, attempts: int = 20) -> str:
    """The error a client resuming from `rev` ends up with; `unavailable` (or a close with 1013)
    only while the process reloads the document."""
    for _ in range(attempts):
        try:
            with Raw(url, doc) as raw:
                raw.send({"type": "hello", "client": "a", "rev": rev})
                code = str(raw.error()["code"])
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1013, e
            continue
        if code != "unavailable":
            return code
        time.sleep(0.1)
    return "unavailable"


def healthy(server: ServerProcess, expected: bool) -> bool:
    return (server.healthz() == 200) == expected


def at_rev(server: ServerProcess, rev: int) -> bool:
    return bool(document(server.http_url, DOC)["rev"] == rev)


def submit(raw: Raw, seq: int, base: int, token: str) -> Message:
    raw.send({"type": "op", "seq": seq, "base": base, "ops": [{"type": "Insert", "content": token}]})
    return raw.until("ack")


def answers_while_down(raw: Raw, seconds: float) -> list[Message]:
    """Everything the server sends on `raw` for a while (an op sent while Redis is down)."""
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            got.append(raw.recv(timeout=max(0.01, deadline - time.monotonic())))
    except (TimeoutError, ConnectionClosed):
        pass
    return got


def test_redis_crash_and_restart_loses_no_acknowledged_op(tmp_path_factory: pytest.TempPathFactory) -> None:
    with Deployment(tmp_path_factory.mktemp("redis-crash"), 2) as d:
        a_url, b_url = d.ws_urls
        acked: list[str] = []
        with Raw(a_url, DOC) as a, Raw(b_url, DOC) as b:
            a.hello("a")
            b.hello("b")
            for i in range(1, 6):
                acked.append(f"[a{i}]")
                submit(a, i, 0, acked[-1])
                acked.append(f"[b{i}]")
                submit(b, i, 0, acked[-1])
            head = document(d.http_url, DOC)
            assert head["rev"] == 10

            d.kill_redis()
            for server in d.servers:
                eventually(partial(healthy, server, False), f"{server.http_url}/healthz unhealthy")
            assert http_get(f"{d.http_url}/docs/{DOC}")[0] == 503
            a.send({"type": "op", "seq": 6, "base": 10, "ops": [{"type": "Insert", "content": "[a6]"}]})
            during = answers_while_down(a, 2.0)
            assert not [m for m in during if m["type"] == "ack"], f"acknowledged with Redis down: {during}"
            codes = {m.get("code") for m in during if m["type"] == "error"}
            assert codes <= {"unavailable", "internal"}, during
            cut(a)

            d.restart_redis()
            for server in d.servers:
                eventually(partial(healthy, server, True), f"{server.http_url}/healthz healthy again")

        # The client resumes on the other process and resubmits its op unchanged.
        with Raw(b_url, DOC) as again:
            again.send({"type": "hello", "client": "a", "rev": 10})
            resumed = again.until("ready")
            assert resumed["rev"] >= 10
            ack = submit(again, 6, 10, "[a6]")
            acked.append("[a6]")
            assert ack["rev"] == 11
        for server in d.servers:
            eventually(partial(at_rev, server, 11), f"{server.http_url} at rev 11")
            text = document(server.http_url, DOC)["text"]
            assert sorted(text.replace("[", " [").split()) == sorted(acked), text
        assert_verified(d.http_url, DOC)


def test_redis_that_comes_back_with_less_history_is_never_hidden(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A failover to a replica that missed the last writes, played by an emptied append-only
    file: clients holding the lost revisions are told rev_ahead, never quietly rewound."""
    doc = "amnesia"
    with Deployment(tmp_path_factory.mktemp("amnesia"), 2) as d:
        with Raw(d.ws_urls[0], doc) as a:
            a.hello("a")
            for i in range(1, 4):
                submit(a, i, i - 1, f"[a{i}]")
            d.kill_redis()
            assert d.redis is not None
            for aof in d.redis.data_dir.glob("*.aof"):
                aof.write_bytes(b"")
            d.restart_redis()
            a.send({"type": "op", "seq": 4, "base": 3, "ops": [{"type": "Insert", "content": "[a4]"}]})
            during = answers_while_down(a, 5.0)
            assert not [m for m in during if m["type"] == "ack"], during
        for url in d.ws_urls:
            assert resume_answer(url, doc, 3) == "rev_ahead"
        for server in d.servers:
            assert server.healthz() == 200
