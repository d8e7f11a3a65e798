"""Presence stamps over real WebSockets: a cursor must reach the others at the place its sender meant.

A `presence` refers to the text its sender held: the revision it names (`rev`), or else the
last revision the server actually wrote to its connection (an op still held in its send
queue is not one). The server moves it to its head before relaying it.
"""

from __future__ import annotations

from typing import Any

from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.operation import Insert
from tandem.server.client import TandemClient
from tests.support import Raw, ServerProcess, run

Message = dict[str, Any]


def ins(text: str, at: int = 0) -> list[dict[str, object]]:
    ops: list[dict[str, object]] = [{"type": "Retain", "length": at}] if at else []
    return ops + [{"type": "Insert", "content": text}]


def op(seq: int, base: int, ops: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "op", "seq": seq, "base": base, "ops": ops}


def placed(presence: Message, later: dict[int, Insert]) -> Cursor:
    """Where a receiver holding every revision in ``later`` puts the cursor of ``presence``."""
    cursor = Cursor(**presence["cursor"])
    for rev in sorted(later):
        if rev > presence["rev"]:
            cursor = transform_cursor(cursor, [later[rev]])
    return cursor


def _hold_then_point(tandem: ServerProcess, doc: str, presence: Message) -> Cursor:
    """A holds "hello" (rev 1) and points at its end while B's "XX" (rev 2) may still be queued to A."""
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        b.send(op(1, 0, ins("hello")))
        b.until("ack")
        a.until("op")
        b.send(op(2, 1, ins("XX")))
        b.until("ack")
        a.send(presence)  # sent before A reads rev 2, which is likely still held in its queue
        seen = b.until("presence")
        return placed(seen, {2: Insert("XX")})


def test_presence_without_rev_is_stamped_with_the_revision_sent_not_the_one_queued(
    tandem: ServerProcess, doc: str
) -> None:
    for i in range(6):
        presence: Message = {"type": "presence", "cursor": {"anchor": 5, "head": 5}}
        cursor = _hold_then_point(tandem, f"{doc}-{i}", presence)
        assert cursor == Cursor(7, 7), f"run {i}: the caret after 'hello' shown at {cursor} in 'XXhello'"


def test_presence_with_rev_refers_to_that_revision(tandem: ServerProcess, doc: str) -> None:
    presence: Message = {"type": "presence", "cursor": {"anchor": 5, "head": 5}, "rev": 1}
    assert _hold_then_point(tandem, doc, presence) == Cursor(7, 7)


def test_presence_with_an_old_rev_is_moved_to_the_head_for_the_others_and_newcomers(
    tandem: ServerProcess, doc: str
) -> None:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        for seq, text in enumerate(["hello", "<", "<"], start=1):
            b.send(op(seq, seq - 1, ins(text)))
            b.until("ack")
        a.send({"type": "presence", "cursor": {"anchor": 5, "head": 5}, "rev": 1})
        assert b.until("presence") == {
            "type": "presence",
            "client": "alice",
            "rev": 3,
            "cursor": {"anchor": 7, "head": 7},
            "user": None,
        }
        with Raw(tandem.ws_url, doc) as c:
            c.hello("carol")
            assert c.until("presence")["cursor"] == {"anchor": 7, "head": 7}


def test_presence_ahead_of_the_document_is_refused(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("alice")
        b.hello("bob")
        a.send({"type": "presence", "cursor": {"anchor": 0, "head": 0}, "rev": 4})
        error = a.until("error")
        assert error["code"] == "bad_message" and "revision 4" in error["message"], error
        a.send({"type": "presence", "cursor": {"anchor": 0, "head": 0}, "rev": 0})
        assert b.until("presence")["rev"] == 0  # the refused one was never relayed
        assert [m["type"] for m in b.received] == ["snapshot", "ready", "presence"]


def test_cursor_set_with_ops_pending_reaches_the_others_where_it_is(tandem: ServerProcess, doc: str) -> None:
    """The client types "XXXXX" before "hello", moving its caret after each key, as an editor does."""
    url = f"{tandem.ws_url}/ws/{doc}"

    async def scenario() -> Cursor:
        async with TandemClient(url, "alice") as alice, TandemClient(url, "bob") as bob:
            bob.insert(0, "hello")
            await bob.synced()
            await alice.wait_for(lambda c: c.text == "hello")
            for i in range(5):
                alice.insert(i, "X")
                alice.set_cursor(Cursor(i + 1, i + 1))  # held: the text holds ops not committed yet
            await alice.synced()
            await bob.wait_for(lambda c: c.text == "XXXXXhello" and "alice" in c.session.remote_cursors)
            return bob.session.remote_cursors["alice"].cursor

    assert run(scenario()) == Cursor(5, 5)


def test_a_newcomer_and_an_old_receiver_place_a_caret_alike(tandem: ServerProcess, doc: str) -> None:
    """Alice types at her caret without sending it again: her caret follows her text for everyone."""
    url = f"{tandem.ws_url}/ws/{doc}"

    async def scenario() -> tuple[Cursor, Cursor]:
        async with TandemClient(url, "alice") as alice, TandemClient(url, "bob") as bob:
            alice.insert(0, "hello")
            await alice.synced()
            alice.set_cursor(Cursor(5, 5))
            await bob.wait_for(lambda c: "alice" in c.session.remote_cursors)
            alice.insert(5, "!")
            await alice.synced()
            await bob.wait_for(lambda c: c.text == "hello!")
            async with TandemClient(url, "carol") as carol:
                await carol.wait_for(lambda c: "alice" in c.session.remote_cursors)
                return (
                    bob.session.remote_cursors["alice"].cursor,
                    carol.session.remote_cursors["alice"].cursor,
                )

    assert run(scenario()) == (Cursor(6, 6), Cursor(6, 6))
