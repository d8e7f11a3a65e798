"""Presence is display data that reaches every other page: what a client may put in it, what it
may cost the server, and how long a cursor outlives its server process.

- a name or colour a page could misuse (a `url(...)` colour, control characters, an endless
  name) is refused with `bad_message` naming the field, and never reaches another client;
- a cursor outside the document at its revision is refused;
- a cursor that would have to be moved through more components than the limit is dropped,
  and the process keeps answering;
- the cursor of a client whose server process was killed disappears from the other
  processes' clients within the TTL, as on a clean leave.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Deployment, Message, Raw, RedisProcess, ServerProcess

HEAVY_LIMIT = 200  # --presence-max-components of the heavy server
TTL = 1.5
MARK = 2**52


def ins(text: str, at: int = 0) -> list[dict[str, object]]:
    ops: list[dict[str, object]] = [{"type": "Retain", "length": at}] if at else []
    return ops + [{"type": "Insert", "content": text}]


def op(seq: int, base: int, ops: list[dict[str, object]]) -> Message:
    return {"type": "op", "seq": seq, "base": base, "ops": ops}


def presence(anchor: int, rev: int | None = None, **user: str) -> Message:
    message: Message = {"type": "presence", "cursor": {"anchor": anchor, "head": anchor}}
    if rev is not None:
        message["rev"] = rev
    if user:
        message["user"] = user
    return message


def answer(conn: Raw) -> Message | None:
    """The error ``conn``'s last message got, or None when it was taken quietly.

    A presence is handled in the document's order, after a ping has long been answered, so the
    marker is another presence, one that is always refused (its cursor lies past any text).
    """
    conn.send({"type": "presence", "cursor": {"anchor": MARK, "head": MARK}})
    first: Message | None = None
    while True:
        message = conn.recv()
        if message["type"] == "error":
            if str(MARK) in message["message"]:
                return first
            first = first or message


def next_presence(conn: Raw, timeout: float = 10.0) -> Message:
    """The next presence relayed to ``conn`` within ``timeout`` (ops and acks before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = conn.recv(timeout=max(0.01, deadline - time.monotonic()))
        if message["type"] == "presence":
            return message
        assert message["type"] != "error", message


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"name": "Ada", "color": "url(//127.0.0.1:9/seen)"}, "user.color"),
        ({"name": "Ada", "color": "#abc\n"}, "user.color"),  # a trailing newline is not a colour
        ({"name": "Ada", "color": "red;background:url(x)"}, "user.color"),
        ({"name": "Ada", "color": "#abcd"}, "user.color"),
        ({"name": "x" * 65, "color": "#abc"}, "user.name"),
        ({"name": "Ada\u0007", "color": "#abc"}, "user.name"),
        ({"name": "Ada\nLovelace", "color": "#abc"}, "user.name"),
        ({"name": "\u202eadA", "color": "#abc"}, "user.name"),  # a bidirectional override
        ({"name": "", "color": "#abc"}, "user.name"),
    ],
)
def test_a_name_or_colour_a_page_could_misuse_is_refused_and_never_relayed(
    tandem: ServerProcess, doc: str, user: dict[str, str], field: str
) -> None:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("mallory")
        b.hello("bob")
        a.send(presence(0, 0, **user))
        error = answer(a)
        assert error is not None and error["code"] == "bad_message" and field in error["message"], error
        a.send(presence(0, 0, name="Mallory", color="#abc"))
        assert answer(a) is None
        # the first presence bob sees is the valid one: the refused one went nowhere
        assert next_presence(b)["user"] == {"name": "Mallory", "color": "#abc"}


def test_plain_names_and_hex_colours_pass(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        for user in ({"name": "😀" * 64, "color": "#1E88e5"}, {"name": "Ada Lovelace", "color": "#abc"}):
            a.send(presence(0, 0, **user))
            assert answer(a) is None
            assert next_presence(b)["user"] == user


def test_a_cursor_outside_the_document_at_its_revision_is_refused(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        a.send(op(1, 0, ins("hello")))
        a.until("ack")
        a.send(op(2, 1, ins("XX")))
        a.until("ack")
        for bad, field in (
            (presence(6, 1), "outside the document"),  # "hello" has 5 code points at revision 1
            (presence(8, 2), "outside the document"),
            (presence(1, 0), "outside the document"),  # empty at revision 0
            ({"type": "presence", "rev": 2, "cursor": {"anchor": -1, "head": 0}}, "cursor.anchor"),
            ({"type": "presence", "rev": 2, "cursor": {"anchor": 0, "head": 2**53}}, "cursor.head"),
        ):
            a.send(bad)
            error = answer(a)
            assert error is not None and error["code"] == "bad_message" and field in error["message"], (
                bad,
                error,
            )
        a.send(presence(5, 1))  # the end of "hello", moved past alice's own "XX"
        assert answer(a) is None
        seen = next_presence(b)
        assert (seen["rev"], seen["cursor"]) == (2, {"anchor": 7, "head": 7})


@pytest.fixture(scope="module")
def heavy(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that moves a cursor through at most HEAVY_LIMIT components."""
    with ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("heavy"),
        extra_args=("--log-level", "warning", "--presence-max-components", str(HEAVY_LIMIT)),
    ) as server:
        yield server


def test_a_cursor_too_costly_to_move_to_the_head_is_dropped_and_the_server_keeps_answering(
    heavy: ServerProcess, doc: str
) -> None:
    # each op has 99 components; the cursor at revision 1 would pass through 3 of them
    unit: list[dict[str, object]] = [
        {"type": "Retain", "length": 1},
        {"type": "Insert", "content": "a"},
        {"type": "Delete", "length": 1},
    ]
    with Raw(heavy.ws_url, doc) as a, Raw(heavy.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        a.send(op(1, 0, ins("x" * 100)))
        a.until("ack")
        for seq in range(2, 5):
            a.send(op(seq, seq - 1, unit * 33))
            a.until("ack")
        for _ in range(5):
            a.send(presence(100, 1))
            assert answer(a) is None  # dropped quietly, as a cursor older than the window
        assert heavy.healthz() == 200
        a.send(presence(100, 3))  # through one op: 99 components, within the limit
        assert answer(a) is None
        seen = next_presence(b)
        assert (seen["rev"], seen["cursor"]) == (4, {"anchor": 100, "head": 100})


@pytest.mark.slow
def test_the_cursor_of_a_killed_process_disappears_within_the_ttl(tmp_path: Path) -> None:
    args = ("--log-level", "warning", "--presence-refresh-seconds", "0.3", "--presence-ttl-seconds", str(TTL))
    with Deployment(tmp_path, servers=2, extra_args=args) as deployment:
        doomed, survivor = deployment.servers
        doc = "ttl"
        with Raw(doomed.ws_url, doc) as a, Raw(survivor.ws_url, doc) as b:
            a.hello("alice")
            b.hello("bob")
            a.send(presence(0, 0, name="Alice", color="#abc"))
            assert answer(a) is None
            seen = next_presence(b)
            assert seen["client"] == "alice" and seen["cursor"] is not None
            # alive, its process refreshes it: it stays past the TTL
            with pytest.raises(TimeoutError):
                b.conn.recv(timeout=2 * TTL)
            doomed.kill()
            gone = next_presence(b, timeout=4 * TTL)  # due within the TTL plus one refresh
            assert gone["client"] == "alice" and gone["cursor"] is None
