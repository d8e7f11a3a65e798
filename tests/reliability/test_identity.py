"""Who may act as a client id, for how long, and how often over HTTP, on a live server.

- With a secret, a client id belongs to the token subject that first used it on a document:
  another subject is refused at hello and at HTTP submit, and the owner's ops still commit.
- A WebSocket ends with its token: `unauthorized`, then close 4401; an op after that is not
  committed, and a client with a token provider comes back with a fresh token.
- HTTP submits are limited per caller: past the burst, 429 `rate_limited` with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from collections.abc import Iterator

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tandem.ot.client import Phase
from tandem.server.auth import LEEWAY_SECONDS, Role, issue_token
from tandem.server.client import TandemClient
from tests.support import Message, Raw, ServerProcess, http_get, http_post, run, unique_doc

SECRET = "identity-test-secret-long-enough-for-hs256"
INSERT = [{"type": "Insert", "content": "a"}]
MAX_SEQ = 2**53 - 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(None, tmp_path_factory.mktemp("identity"), env={"TANDEM_SECRET": SECRET}) as s:
        yield s


def token(doc: str, sub: str | None, role: Role = Role.WRITE, ttl: float = 60) -> str:
    if sub is None:  # a read token from any JWT library, naming nobody
        claims = {"doc": doc, "role": role.value, "exp": int(time.time() + ttl)}
        return jwt.encode(claims, SECRET, algorithm="HS256")
    return issue_token(SECRET, doc, role, ttl, sub=sub)


def lapsing_token(doc: str, sub: str, seconds: float = 2.0) -> tuple[str, float]:
    """A write token the server stops honouring (exp plus its leeway) within ``seconds``; and when."""
    minted = issue_token(SECRET, doc, Role.WRITE, seconds, now=time.time() - LEEWAY_SECONDS, sub=sub)
    exp = jwt.decode(minted, options={"verify_signature": False})["exp"]
    return minted, exp + LEEWAY_SECONDS


def read_doc(server: ServerProcess, doc: str) -> Message:
    status, body = http_get(f"{server.http_url}/docs/{doc}?token={token(doc, 'auditor', Role.READ)}")
    assert status == 200, (status, body)
    answer: Message = json.loads(body)
    return answer


def post(server: ServerProcess, doc: str, bearer: str, submit: Message) -> tuple[int, Message]:
    status, body = http_post(
        f"{server.http_url}/docs/{doc}/ops",
        json.dumps(submit).encode(),
        headers={"Authorization": f"Bearer {bearer}"},
    )
    return status, json.loads(body)


# -- client ids belong to a subject ---------------------------------------------------------


def test_another_subject_cannot_use_a_client_id_and_the_owner_still_commits(server: ServerProcess) -> None:
    doc = unique_doc("ident")
    with Raw(server.ws_url, doc) as alice, Raw(server.ws_url, doc) as mallory:
        assert alice.hello("alice-laptop", token=token(doc, "alice"))["type"] == "snapshot"
        # a second writer with a valid token of its own, under Alice's client id
        refused = mallory.hello("alice-laptop", token=token(doc, "mallory"))
        assert refused["type"] == "error" and refused["code"] == "unauthorized", refused
        assert "belongs to another" in refused["message"]
        mallory.send({"type": "op", "seq": 1, "base": 0, "ops": []})
        assert mallory.error()["code"] == "bad_message"  # no hello: nothing was committed
        # ... nor over HTTP, where a seq of 2^53-1 would have shut Alice out for good
        status, answer = post(
            server,
            doc,
            token(doc, "mallory"),
            {"client": "alice-laptop", "seq": MAX_SEQ, "base": 0, "ops": []},
        )
        assert (status, answer["code"]) == (401, "unauthorized"), answer
        assert read_doc(server, doc)["rev"] == 0

        alice.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})
        assert alice.until("ack")["rev"] == 1
        alice.send({"type": "op", "seq": 2, "base": 1, "ops": [{"type": "Insert", "content": "b"}]})
        assert alice.until("ack")["rev"] == 2
    assert read_doc(server, doc)["text"] == "ba"


def test_the_owner_keeps_its_client_id_with_a_fresh_token_and_over_http(server: ServerProcess) -> None:
    doc = unique_doc("ident")
    status, ack = post(
        server, doc, token(doc, "alice"), {"client": "alice-1", "seq": 1, "base": 0, "ops": INSERT}
    )
    assert (status, ack["rev"]) == (200, 1), ack
    with Raw(server.ws_url, doc) as again:
        assert again.hello("alice-1", token=token(doc, "alice", ttl=120))["type"] == "snapshot"
        again.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})  # a resend: its original ack
        assert again.until("ack")["rev"] == 1
    with Raw(server.ws_url, doc) as anonymous:
        refused = anonymous.hello("alice-1", token=token(doc, None, Role.READ))
        assert refused["code"] == "unauthorized", refused  # an anonymous reader claims nothing, takes nothing
        assert anonymous.hello("viewer-9", token=token(doc, None, Role.READ))["type"] == "snapshot"


def test_a_write_token_without_a_subject_is_refused(server: ServerProcess) -> None:
    doc = unique_doc("ident")
    nameless = jwt.encode(
        {"doc": doc, "role": "write", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
    )
    with Raw(server.ws_url, doc) as raw:
        refused = raw.hello("w", token=nameless)
        assert refused["code"] == "unauthorized" and "'sub'" in refused["message"], refused


# -- tokens end connections ----------------------------------------------------------------


def test_a_socket_is_closed_when_its_token_expires_and_a_later_op_is_not_committed(
    server: ServerProcess,
) -> None:
    doc = unique_doc("expiry")
    short, lapses = lapsing_token(doc, "bob")
    with Raw(server.ws_url, doc) as bob:
        assert bob.hello("bob-1", token=short)["type"] == "snapshot"
        bob.send({"type": "op", "seq": 1, "base": 0, "ops": INSERT})
        assert bob.until("ack")["rev"] == 1
        time.sleep(max(0.0, lapses - time.time()) + 0.3)
        with contextlib.suppress(ConnectionClosed):  # the server may have closed already
            bob.send({"type": "op", "seq": 2, "base": 1, "ops": [{"type": "Insert", "content": "late"}]})
        assert bob.closed_with(timeout=5) == 4401
        first_ack = next(i for i, m in enumerate(bob.received) if m["type"] == "ack")
        after = bob.received[first_ack + 1 :]
        assert [m["code"] for m in after if m["type"] == "error"] == ["unauthorized"], after
        assert not [m for m in after if m["type"] in ("ack", "op")], after
    state = read_doc(server, doc)
    assert (state["rev"], state["text"]) == (1, "a")


def test_a_client_with_a_token_provider_reconnects_with_a_fresh_token(server: ServerProcess) -> None:
    doc = unique_doc("expiry")
    issued: list[float] = []

    async def provide() -> str:
        await asyncio.sleep(0)  # an async provider, as one that asks an auth service
        if not issued:
            minted, lapses = lapsing_token(doc, "carol")
            issued.append(lapses)
            return minted
        issued.append(time.time() + 60)
        return token(doc, "carol")

    async def scenario() -> None:
        async with TandemClient(f"{server.ws_url}/ws/{doc}", "carol-1", token=provide) as client:
            client.insert(0, "a")
            await client.synced()
            deadline = issued[0] + 5
            while not (len(issued) >= 2 and client.session.phase is Phase.LIVE) and time.time() < deadline:
                await asyncio.sleep(0.05)
            assert len(issued) == 2, f"the provider was called {len(issued)} time(s)"
            assert client.connections == 2
            assert any(e.code == "unauthorized" for e in client.errors), client.errors
            client.insert(1, "b")
            await client.synced()

    run(scenario(), timeout=20)
    assert read_doc(server, doc)["text"] == "ab"


# -- HTTP submits are rate limited ---------------------------------------------------------


@pytest.mark.slow
def test_a_flood_of_http_submits_gets_429_beyond_the_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    """1,500 submits at full speed over one connection, on an open server (keyed by address):
    the default limit is --ops-per-second (200/s, burst 200)."""
    doc = unique_doc("flood")
    with ServerProcess(None, tmp_path_factory.mktemp("flood")) as open_server:
        conn = http.client.HTTPConnection("127.0.0.1", open_server.port, timeout=10)
        statuses: dict[int, int] = {}
        retry_after: set[str] = set()
        started = time.monotonic()
        for seq in range(1, 1501):
            conn.request(
                "POST", f"/docs/{doc}/ops", json.dumps({"client": "h", "seq": seq, "base": 0, "ops": []})
            )
            response = conn.getresponse()
            body = json.loads(response.read())
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 429:
                assert body["code"] == "rate_limited", body
                retry_after.add(response.getheader("Retry-After") or "")
        elapsed = time.monotonic() - started
        conn.close()
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.get(429, 0) > 0, f"no 429 in 1,500 submits over {elapsed:.1f} s: {statuses}"
        assert statuses[200] <= 200 + 200 * elapsed + 5, (statuses, elapsed)
        assert retry_after and all(value.isdigit() and int(value) >= 1 for value in retry_after), retry_after
        assert read_doc_open(open_server, doc)["rev"] == statuses[200]


def read_doc_open(server: ServerProcess, doc: str) -> Message:
    status, body = http_get(f"{server.http_url}/docs/{doc}")
    assert status == 200, (status, body)
    answer: Message = json.loads(body)
    return answer


def test_http_limit_is_per_token_subject(tmp_path_factory: pytest.TempPathFactory) -> None:
    doc = unique_doc("flood")
    env = {"TANDEM_SECRET": SECRET, "TANDEM_HTTP_OPS_PER_SECOND": "5"}
    with ServerProcess(None, tmp_path_factory.mktemp("persub"), env=env) as limited:
        statuses = [
            post(limited, doc, token(doc, "dave"), {"client": "dave-1", "seq": seq, "base": 0, "ops": []})[0]
            for seq in range(1, 11)
        ]
        assert statuses.count(200) in (5, 6) and statuses[-1] == 429, statuses
        # another subject, from the same address, has a bucket of its own
        status, ack = post(
            limited, doc, token(doc, "erin"), {"client": "erin-1", "seq": 1, "base": 0, "ops": []}
        )
        assert status == 200, ack
