"""Access control on a live server started with TANDEM_SECRET and an allowed-origins list."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tandem.server.auth import Role, issue_token
from tests.support import Raw, ServerProcess, http_get

SECRET = "access-test-secret-long-enough-for-hs256"
ORIGIN = "https://app.example.com"
EVIL = "https://evil.example.com"
INSERT = [{"type": "Insert", "content": "x"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TANDEM_SECRET": SECRET, "TANDEM_ALLOWED_ORIGINS": ORIGIN}
    with ServerProcess(None, tmp_path_factory.mktemp("access"), env=env) as s:
        yield s


def token(doc: str, role: Role = Role.WRITE, ttl: float = 60) -> str:
    return issue_token(SECRET, doc, role, ttl)


def test_writer_with_token_in_hello_edits(server: ServerProcess) -> None:
    with Raw(server.ws_url, "acc.w") as raw:
        assert raw.hello("w1", token=token("acc.w"))["type"] == "snapshot"
        raw.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})
        assert raw.until("ack")["rev"] == 1


def test_token_as_query_parameter(server: ServerProcess) -> None:
    with Raw(server.ws_url, "acc.q", query=f"?token={token('acc.*')}") as raw:
        assert raw.hello("q1")["type"] == "snapshot"


def test_reader_receives_ops_but_cannot_commit(server: ServerProcess) -> None:
    doc = "acc.r"
    with Raw(server.ws_url, doc) as reader, Raw(server.ws_url, doc) as writer:
        assert reader.hello("r1", token=token(doc, Role.READ))["type"] == "snapshot"
        writer.hello("w2", token=token(doc))
        reader.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})
        error = reader.error()
        assert (error["code"], error.get("seq")) == ("read_only", 1)
        writer.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "y"}]})
        writer.until("ack")
        seen = reader.until("op")
        assert (seen["client"], seen["rev"]) == ("w2", 1)
        writer.send({"type": "presence", "cursor": {"anchor": 1, "head": 1}})
        cursor = reader.until("presence")
        assert (cursor["client"], cursor["cursor"]) == ("w2", {"anchor": 1, "head": 1})
        assert reader.alive()
    status, body = http_get(f"{server.http_url}/docs/{doc}?token={token(doc, Role.READ)}")
    assert status == 200 and json.loads(body)["text"] == "y"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not-a-jwt",
        issue_token("some-other-secret-that-is-long-enough", "acc.u", Role.WRITE, 60),
        issue_token(SECRET, "acc.u", Role.WRITE, 60, now=0),
        issue_token(SECRET, "elsewhere", Role.WRITE, 60),
    ],
)
def test_missing_forged_expired_or_foreign_tokens_are_unauthorized(
    server: ServerProcess, bad: str | None
) -> None:
    with Raw(server.ws_url, "acc.u") as raw:
        answer = raw.hello("u1", token=bad)
        assert answer["type"] == "error" and answer["code"] == "unauthorized", answer
        raw.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})
        try:
            while (m := raw.recv(timeout=5))["type"] != "error":
                assert m["type"] not in ("ack", "snapshot", "op"), m
        except ConnectionClosed:  # closing the connection is a refusal too
            pass
    status, body = http_get(f"{server.http_url}/docs/acc.u")
    assert status in (401, 403), (status, body)


def test_http_requires_a_token_too(server: ServerProcess) -> None:
    assert http_get(f"{server.http_url}/docs/acc.w")[0] in (401, 403)
    assert http_get(f"{server.http_url}/docs/acc.w?token={token('acc.w', Role.READ)}")[0] == 200
    assert server.healthz() == 200


def test_origins_outside_the_list_are_refused(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/ws/acc.o", origin=Origin(EVIL), open_timeout=10)
    assert refused.value.response.status_code == 403
    with connect(f"{server.ws_url}/ws/acc.o", origin=Origin(ORIGIN), open_timeout=10) as ws:
        ws.send(json.dumps({"type": "hello", "client": "o1", "token": token("acc.o")}))
        frame = json.loads(ws.recv(timeout=10))
        assert (frame[0] if isinstance(frame, list) else frame)["type"] == "snapshot"


def test_server_says_at_start_who_may_edit(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert "access: tokens required" in server.log_tail(100_000)
    assert ORIGIN in server.log_tail(100_000)
    with ServerProcess(None, tmp_path_factory.mktemp("open")) as open_server:
        assert "access: OPEN" in open_server.log_tail(100_000)
