"""A host with cookie sessions and its own authorize hook (tests/embed/hosts.py): no session is
refused, a reader's op gets `read_only`, a writer's commits; an access past its expiry is asked
for again and a still-valid session stays open; a revocation re-checks the user's sockets in
every process on the same Redis: a changed role applies at once, a user removed is closed with
4403, and the Python client then stops instead of reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tandem.server.auth import Role
from tandem.server.client import TandemClient
from tests.embed.hosts import Directory, HostServer, cookie_host, settings_for
from tests.support import Message, Raw, RedisProcess, run, unique_doc

INSERT = [{"type": "Insert", "content": "a"}]


class CookieRaw(Raw):
    """`Raw` on /collab/ws/{doc}, sending a session cookie with the handshake."""

    def __init__(self, host: HostServer, doc: str, cookie: str | None) -> None:
        self.url = f"{host.ws_url}/collab/ws/{doc}"
        self.received: list[Message] = []
        self._pending: list[Message] = []
        headers = {"Cookie": f"session={cookie}"} if cookie else None
        self._stack = contextlib.ExitStack()
        self.conn = self._stack.enter_context(
            connect(self.url, open_timeout=10, close_timeout=2, additional_headers=headers)
        )

    def op(self, seq: int, base: int = 0) -> Message:
        """Submit an insert; its answer (ack or error), past others' ops."""
        self.send({"type": "op", "seq": seq, "base": base, "ops": INSERT})
        while (message := self.recv())["type"] not in ("ack", "error"):
            pass
        return message


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory()


@pytest.fixture(scope="module")
def hosts(
    redis: RedisProcess, directory: Directory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[HostServer]]:
    """Two processes' worth of the host app (two Tandems) on the session's Redis."""
    one, _ = cookie_host(settings_for(redis.url, tmp_path_factory.mktemp("a")), directory)
    two, _ = cookie_host(settings_for(redis.url, tmp_path_factory.mktemp("b")), directory)
    with HostServer(one) as a, HostServer(two) as b:
        yield [a, b]


def login(host: HostServer, user: str) -> str:
    answer = httpx.get(f"{host.http_url}/login/{user}")
    assert answer.status_code == 200
    return answer.cookies["session"]


def set_role(host: HostServer, user: str, role: str, doc: str | None = None) -> None:
    params = {"role": role} | ({"doc": doc} if doc else {})
    assert httpx.post(f"{host.http_url}/admin/users/{user}", params=params).status_code == 200


def test_no_session_is_refused_a_reader_reads_and_a_writer_commits(
    hosts: list[HostServer], directory: Directory
) -> None:
    host = hosts[0]
    directory.roles.update({"rita": Role.READ, "walt": Role.WRITE})
    doc = unique_doc("cookie")
    with CookieRaw(host, doc, None) as anonymous:
        anonymous.send({"type": "hello", "client": "anon-1"})
        refused = anonymous.error()
        assert refused["code"] == "unauthorized" and "log in" in refused["message"]
    with (
        CookieRaw(host, doc, login(host, "rita")) as reader,
        CookieRaw(host, doc, login(host, "walt")) as writer,
    ):
        assert reader.hello("rita-1")["type"] == "snapshot"
        assert writer.hello("walt-1")["type"] == "snapshot"
        refused = reader.op(1)
        assert (refused["type"], refused["code"], refused["seq"]) == ("error", "read_only", 1)
        assert writer.op(1, 0)["type"] == "ack"
        assert reader.until("op")["rev"] == 1
    # the same over HTTP, under the prefix
    with httpx.Client(base_url=f"{host.http_url}/collab") as http:
        assert http.get(f"/docs/{doc}").status_code == 401
        http.cookies.set("session", login(host, "rita"))
        assert http.get(f"/docs/{doc}").json()["text"] == "a"
        body = json.dumps({"client": "rita-2", "seq": 1, "base": 1, "ops": INSERT})
        assert http.post(f"/docs/{doc}/ops", content=body).status_code == 403
        http.cookies.set("session", login(host, "walt"))
        assert http.post(f"/docs/{doc}/ops", content=body.replace("rita-2", "walt-2")).status_code == 200


def test_client_ids_are_bound_to_the_hooks_subject(hosts: list[HostServer], directory: Directory) -> None:
    host, doc = hosts[0], unique_doc("cookie-ids")
    directory.roles.update({"wanda": Role.WRITE, "xavi": Role.WRITE})
    with CookieRaw(host, doc, login(host, "wanda")) as wanda:
        assert wanda.hello("shared-id")["type"] == "snapshot"
    with CookieRaw(host, doc, login(host, "xavi")) as xavi:
        refused = xavi.hello("shared-id")
        assert refused["type"] == "error" and refused["code"] == "unauthorized"


def test_an_expired_access_is_checked_again_and_a_valid_session_stays_open(
    hosts: list[HostServer], directory: Directory
) -> None:
    host, doc = hosts[0], unique_doc("cookie-expiry")
    directory.roles["erin"] = Role.WRITE
    directory.ttl["erin"] = 0.4  # the hook asks to be asked again every 0.4 s
    with CookieRaw(host, doc, login(host, "erin")) as erin:
        assert erin.hello("erin-1")["type"] == "snapshot"
        asked = directory.asked["erin"]
        time.sleep(1.5)
        assert directory.asked["erin"] >= asked + 2  # re-checked, and still granted
        assert erin.op(1, 0)["type"] == "ack"
        directory.roles.pop("erin")  # the session ends on the host's side: the next re-check refuses
        assert erin.error(timeout=5)["code"] == "unauthorized"
        assert erin.closed_with(timeout=5) == 4401


def test_revoke_changes_a_role_at_once_then_closes_with_4403_in_every_process(
    hosts: list[HostServer], directory: Directory
) -> None:
    a, b = hosts
    doc, other = unique_doc("cookie-revoke"), unique_doc("cookie-revoke")
    directory.roles["ann"] = Role.WRITE
    cookie = login(a, "ann")
    with (
        CookieRaw(a, doc, cookie) as here,
        CookieRaw(b, doc, cookie) as there,
        CookieRaw(b, other, cookie) as elsewhere,
    ):
        for raw, client in ((here, "ann-1"), (there, "ann-2"), (elsewhere, "ann-3")):
            assert raw.hello(client)["type"] == "snapshot"
        assert here.op(1, 0)["type"] == "ack"
        # demoted on `doc` only, through process a: both processes re-check ann's sockets on doc
        set_role(a, "ann", "read", doc)
        assert here.op(2, 1)["code"] == "read_only"
        seq, deadline = 1, time.monotonic() + 5
        while (answer := there.op(seq))["type"] == "ack" and time.monotonic() < deadline:
            seq += 1  # the other process hears of the revocation by pub/sub, a moment later
        assert answer.get("code") == "read_only", answer
        # on the other document nothing was re-checked yet: the socket keeps its write role
        assert elsewhere.op(1, 0)["type"] == "ack"
        # removed: every socket of ann, in both processes, on every document, is closed with 4403
        set_role(a, "ann", "none")
        for raw in (here, there, elsewhere):
            error = raw.error(timeout=5)
            assert error["code"] == "unauthorized" and "revoked" in error["message"]
            assert raw.closed_with(timeout=5) == 4403


def test_a_revoked_python_client_stops_instead_of_reconnecting(
    hosts: list[HostServer], directory: Directory
) -> None:
    host, doc = hosts[1], unique_doc("cookie-bot")
    directory.roles["bot"] = Role.WRITE
    directory.keys["key-of-bot"] = "bot"  # an API key, sent as the token, instead of a cookie

    async def scenario() -> TandemClient:
        async with TandemClient(f"{host.ws_url}/collab/ws/{doc}", token="key-of-bot") as client:
            client.insert(0, "beep")
            await client.synced()
            directory.roles.pop("bot")
            async with httpx.AsyncClient() as http:
                await http.post(f"{host.http_url}/admin/users/bot", params={"role": "none"})
            await client.wait_for(lambda c: c.revoked)
            await asyncio.sleep(1.0)  # long enough for several reconnects, were it to try
            return client

    client = run(scenario())
    assert client.revoked and client.close_code == 4403 and client.connections == 1
    assert client.text == "beep"
