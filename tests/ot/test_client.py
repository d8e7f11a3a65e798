"""The client state machine, every state against every input, without sockets.

Each test starts a session in one of the four states (the `start` fixture) against a
tiny in-memory history that stamps revisions and hashes as the server does, then
feeds one input and checks the next state, the text and the effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tandem.ot import (
    Acknowledged,
    AwaitingAck,
    AwaitingResolution,
    AwaitingWithBuffer,
    CaughtUp,
    ClientSession,
    Cursor,
    Diverged,
    Effect,
    InvalidCursor,
    InvalidOperation,
    Lost,
    Operation,
    Phase,
    PresenceChanged,
    ProtocolViolation,
    Reconnect,
    Send,
    ServerError,
    Synchronized,
    TextChanged,
    apply,
    delete_op,
    insert_op,
    rebase,
)
from tandem.ot.integrity import genesis_hash, next_hash
from tandem.ot.protocol import (
    Ack,
    CommittedOp,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Pong,
    Presence,
    PresenceUpdate,
    Ready,
    Snapshot,
    SubmitOp,
    User,
)

Start = tuple[str, "ClientSession", "History"]
STATES = ["synchronized", "awaiting_ack", "awaiting_with_buffer", "awaiting_resolution"]


@dataclass
class History:
    """The server side of one document: committed ops with their hashes."""

    text: str = ""
    hashes: list[str] = field(default_factory=lambda: [genesis_hash("doc")])
    ops: list[tuple[str, int, Operation]] = field(default_factory=list)

    @property
    def rev(self) -> int:
        return len(self.ops)

    def commit(self, client: str, seq: int, ops: Operation, base: int | None = None) -> CommittedOp:
        if base is not None:
            ops = rebase(ops, [o for _, _, o in self.ops[base:]])
        self.text = apply(self.text, ops)
        self.ops.append((client, seq, ops))
        self.hashes.append(next_hash(self.hashes[-1], self.rev, client, seq, ops))
        return self.committed(self.rev)

    def committed(self, rev: int) -> CommittedOp:
        client, seq, ops = self.ops[rev - 1]
        return CommittedOp(rev=rev, client=client, seq=seq, ops=ops, hash=self.hashes[rev])

    def ack(self, rev: int) -> Ack:
        _, seq, _ = self.ops[rev - 1]
        return Ack(seq=seq, rev=rev, hash=self.hashes[rev])

    def snapshot(self) -> Snapshot:
        return Snapshot(rev=self.rev, text=self.text, hash=self.hashes[-1])


def sent(effects: list[Effect]) -> list[object]:
    return [e.message for e in effects if isinstance(e, Send)]


def connect_live(session: ClientSession, history: History) -> list[Effect]:
    effects = session.connect()
    effects += session.receive(history.snapshot())
    return effects + session.receive(Ready(rev=history.rev))


def make(state: str) -> tuple[ClientSession, History]:
    """A live session on "hello" (rev 1) in ``state``; the op in flight inserts "A" at the end."""
    history = History()
    history.commit("x", 1, insert_op(0, "hello"))
    session = ClientSession("me")
    connect_live(session, history)
    if state == "synchronized":
        return session, history
    session.edit(insert_op(5, "A"))
    if state == "awaiting_with_buffer":
        session.edit(insert_op(0, "B"))
    if state == "awaiting_resolution":
        # the connection drops, someone edits, and the resume comes as a snapshot
        session.disconnected()
        history.commit("x", 2, insert_op(0, "<"))
        session.connect()
        session.receive(history.snapshot())
        session.receive(Ready(rev=history.rev))
    return session, history


@pytest.fixture(params=STATES)
def start(request: pytest.FixtureRequest) -> tuple[str, ClientSession, History]:
    return (request.param, *make(request.param))


def test_first_connect_says_hello_without_rev_and_shows_the_snapshot() -> None:
    history = History()
    history.commit("x", 1, insert_op(0, "hi"))
    session = ClientSession("me", token="t")
    assert session.connect() == [Send(Hello(client="me", rev=None, token="t"))]
    assert session.receive(history.snapshot()) == [TextChanged(insert_op(0, "hi"))]
    assert session.receive(Ready(rev=1)) == [CaughtUp(1)]
    assert (session.text, session.rev, session.phase) == ("hi", 1, Phase.LIVE)


def test_the_states_are_the_ones_named(start: Start) -> None:
    name, session, _ = start
    expected = {
        "synchronized": Synchronized,
        "awaiting_ack": AwaitingAck,
        "awaiting_with_buffer": AwaitingWithBuffer,
        "awaiting_resolution": AwaitingResolution,
    }[name]
    assert type(session.state) is expected
    assert (
        session.text
        == {
            "synchronized": "hello",
            "awaiting_ack": "helloA",
            "awaiting_with_buffer": "BhelloA",
            "awaiting_resolution": "<hello",  # the op in flight is not in the snapshot's text
        }[name]
    )


# ------------------------------------------------------------------ edit


def test_edit(start: Start) -> None:
    name, session, _ = start
    before_seq = session.next_seq
    effects = session.edit(insert_op(0, "Z"))
    assert effects[0] == TextChanged(insert_op(0, "Z"), remote=False)
    assert session.text.startswith("Z")
    if name == "synchronized":
        assert type(session.state) is AwaitingAck
        assert sent(effects) == [SubmitOp(seq=1, base=1, ops=insert_op(0, "Z"))]
        assert session.next_seq == before_seq + 1
    else:
        assert sent(effects) == []  # one op in flight at a time
        assert session.next_seq == before_seq
        expected = AwaitingResolution if name == "awaiting_resolution" else AwaitingWithBuffer
        assert type(session.state) is expected


def test_edit_that_does_not_fit_is_refused_and_changes_nothing(
    start: Start,
) -> None:
    _, session, _ = start
    state, text = session.state, session.text
    with pytest.raises(InvalidOperation, match="spans 99 code points"):
        session.edit(delete_op(0, 99))
    assert (session.state, session.text) == (state, text)


def test_empty_edit_is_no_change(start: Start) -> None:
    _, session, _ = start
    state = session.state
    assert session.edit(()) == []
    assert session.state == state


def test_edit_before_the_first_snapshot_is_a_protocol_violation() -> None:
    session = ClientSession("me")
    session.connect()
    with pytest.raises(ProtocolViolation, match="before the first snapshot"):
        session.edit(insert_op(0, "x"))


def test_edits_while_disconnected_are_sent_after_ready_on_the_new_base() -> None:
    session, history = make("synchronized")
    session.disconnected()
    assert session.edit(insert_op(0, "a")) == [TextChanged(insert_op(0, "a"), remote=False)]
    session.edit(insert_op(1, "b"))
    history.commit("x", 2, insert_op(5, "!"))
    session.connect()
    assert session.receive(history.committed(2)) == [TextChanged(insert_op(7, "!"))]
    effects = session.receive(Ready(rev=2))
    assert sent(effects) == [SubmitOp(seq=1, base=2, ops=insert_op(0, "a"))]
    assert session.text == "abhello!"


# ------------------------------------------------------------------ a remote op


def test_remote_op_is_transformed_past_what_is_pending(start: Start) -> None:
    name, session, history = start
    msg = history.commit("x", 9, insert_op(history.rev and len(history.text), "Q"))  # at the end
    effects = session.receive(msg)
    assert session.rev == history.rev
    assert (
        session.text
        == {
            "synchronized": "helloQ",
            "awaiting_ack": "helloAQ",  # the own op wins the tie: it is committed later
            "awaiting_with_buffer": "BhelloAQ",
            "awaiting_resolution": "<helloQ",
        }[name]
    )
    assert [e for e in effects if isinstance(e, TextChanged)][0].remote
    assert sent(effects) == []
    assert type(session.state).__name__.lower().replace("_", "") == name.replace("_", "")


def test_replayed_op_already_held_is_ignored(start: Start) -> None:
    _, session, history = start
    text, state = session.text, session.state
    assert session.receive(history.committed(history.rev)) == []
    assert (session.text, session.state) == (text, state)


def test_op_that_skips_a_revision_is_dropped_and_the_gap_fetched(
    start: Start,
) -> None:
    _, session, history = start
    held = history.rev
    history.commit("x", 10, insert_op(0, "1"))
    third = history.commit("x", 11, insert_op(0, "2"))
    text = session.text
    assert sent(session.receive(third)) == [Fetch(from_=held + 1, to=held + 2)]
    assert session.text == text and session.rev == held
    # asked already: a later live op asks only for what is new
    fourth = history.commit("x", 12, insert_op(0, "3"))
    assert sent(session.receive(fourth)) == [Fetch(from_=held + 3, to=held + 3)]
    for rev in range(held + 1, history.rev + 1):
        session.receive(history.committed(rev))
    assert session.rev == history.rev and "321" in session.text


def test_op_with_a_bad_hash_reloads(start: Start) -> None:
    _, session, history = start
    msg = history.commit("x", 10, insert_op(0, "1"))
    bad = CommittedOp(rev=msg.rev, client=msg.client, seq=msg.seq, ops=msg.ops, hash="00" * 32)
    effects = session.receive(bad)
    assert isinstance(effects[0], Diverged) and isinstance(effects[-1], Reconnect)
    assert session.phase is Phase.CLOSING
    assert session.receive(msg) == []  # the rest of that connection is ignored
    session.disconnected()
    assert session.connect() == [Send(Hello(client="me", rev=None))]


# ------------------------------------------------------------------ the ack


def test_ack(start: Start) -> None:
    name, session, history = start
    if name == "synchronized":
        assert session.receive(Ack(seq=1, rev=2, hash="x")) == []  # nothing in flight
        return
    history.commit("me", 1, insert_op(5, "A"), base=1)
    if name == "awaiting_resolution":
        # committed after the snapshot: the text lacks it, so the committed op is fetched
        assert sent(session.receive(history.ack(3))) == [Fetch(from_=3, to=3)]
        assert type(session.state) is AwaitingResolution
        return
    effects = session.receive(history.ack(history.rev))
    assert effects[0] == Acknowledged(1, 2)
    assert session.rev == 2
    if name == "awaiting_ack":
        assert type(session.state) is Synchronized and sent(effects) == []
    else:
        assert type(session.state) is AwaitingAck
        assert sent(effects) == [SubmitOp(seq=2, base=2, ops=insert_op(0, "B"))]


def test_duplicate_ack_is_ignored(start: Start) -> None:
    _, session, _ = start
    state = session.state
    assert session.receive(Ack(seq=99, rev=1, hash="x")) == []
    assert session.state == state


def test_ack_that_skips_a_revision_fetches_it() -> None:
    session, history = make("awaiting_ack")
    history.commit("x", 5, insert_op(0, "z"))
    history.commit("me", 1, insert_op(5, "A"), base=1)
    assert sent(session.receive(history.ack(3))) == [Fetch(from_=2, to=3)]
    assert type(session.state) is AwaitingAck
    session.receive(history.committed(2))
    effects = session.receive(history.committed(3))  # the own op, fetched: that is the ack
    assert Acknowledged(1, 3) in effects and isinstance(session.state, Synchronized)
    assert session.text == history.text == "zhelloA"


def test_ack_with_a_bad_hash_reloads() -> None:
    session, _ = make("awaiting_ack")
    effects = session.receive(Ack(seq=1, rev=2, hash="00" * 32))
    assert isinstance(effects[0], Diverged) and session.phase is Phase.CLOSING


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize("name", ["awaiting_ack", "awaiting_with_buffer"])
def test_resume_resubmits_the_op_in_flight_unchanged(name: str) -> None:
    session, history = make(name)
    session.disconnected()
    history.commit("x", 2, insert_op(0, "<"))
    assert session.connect() == [Send(Hello(client="me", rev=1))]
    session.receive(history.committed(2))
    effects = session.receive(Ready(rev=2))
    assert sent(effects) == [SubmitOp(seq=1, base=1, ops=insert_op(5, "A"))]  # same seq, same base


def test_replayed_own_op_is_its_ack() -> None:
    session, history = make("awaiting_with_buffer")
    session.disconnected()
    history.commit("me", 1, insert_op(5, "A"), base=1)  # committed before the drop
    session.connect()
    effects = session.receive(history.committed(2))
    assert effects == [Acknowledged(1, 2)]
    effects = session.receive(Ready(rev=2))
    assert sent(effects) == [SubmitOp(seq=2, base=2, ops=insert_op(0, "B"))]


def test_resolution_ack_at_or_below_the_snapshot_means_the_text_holds_it() -> None:
    session, history = make("awaiting_ack")
    session.disconnected()
    history.commit("me", 1, insert_op(5, "A"), base=1)
    history.commit("x", 2, insert_op(0, "<"))
    session.connect()
    session.receive(Snapshot(rev=3, text=history.text, hash=history.hashes[3]))
    assert type(session.state) is AwaitingResolution
    effects = session.receive(Ready(rev=3))
    assert sent(effects) == [SubmitOp(seq=1, base=1, ops=insert_op(5, "A"))]
    session.edit(insert_op(0, "B"))
    effects = session.receive(history.ack(2))  # the exactly-once ack names the old revision
    assert effects[0] == Acknowledged(1, 2)
    assert sent(effects) == [SubmitOp(seq=2, base=3, ops=insert_op(0, "B"))]
    assert session.text == "B<helloA"


def test_resolution_ack_after_the_snapshot_fetches_the_committed_op() -> None:
    session, history = make("awaiting_resolution")
    session.edit(insert_op(6, "C"))  # "<helloC": the local text lacks the op in flight
    history.commit("me", 1, insert_op(5, "A"), base=1)
    effects = session.receive(history.ack(3))
    assert sent(effects) == [Fetch(from_=3, to=3)]
    effects = session.receive(history.committed(3))
    assert Acknowledged(1, 3) in effects
    # "C" was typed later than "A" and will be committed later: it takes the tie, left
    assert sent(effects) == [SubmitOp(seq=2, base=3, ops=insert_op(6, "C"))]
    assert session.text == "<helloCA"


def test_snapshot_of_a_later_revision(start: Start) -> None:
    name, session, history = start
    session.disconnected()
    history.commit("x", 7, insert_op(0, "#"))
    session.connect()
    effects = session.receive(history.snapshot())
    assert session.text == history.text and session.rev == history.rev
    assert [e for e in effects if isinstance(e, TextChanged)][0].remote
    lost = [op for e in effects if isinstance(e, Lost) for op in e.ops]
    if name == "synchronized":
        assert isinstance(session.state, Synchronized) and lost == []
    else:
        # the op in flight may be in the snapshot: it is resolved by its ack, never reported lost
        assert type(session.state) is AwaitingResolution
        assert lost == ([insert_op(0, "B")] if name == "awaiting_with_buffer" else [])


def test_snapshot_resume_loses_only_the_buffer() -> None:
    session, history = make("awaiting_with_buffer")
    session.disconnected()
    history.commit("x", 2, insert_op(0, "<"))
    session.connect()
    effects = session.receive(history.snapshot())
    assert [e for e in effects if isinstance(e, Lost)][0].ops == (insert_op(0, "B"),)
    assert session.text == "<hello"
    assert type(session.state) is AwaitingResolution


def test_snapshot_of_the_revision_held_keeps_what_is_pending() -> None:
    session, history = make("awaiting_with_buffer")
    session.disconnected()
    session.connect()
    assert session.receive(history.snapshot()) == []
    assert type(session.state) is AwaitingWithBuffer and session.text == "BhelloA"


def test_ready_announcing_more_than_was_replayed_fetches_the_rest(
    start: Start,
) -> None:
    _, session, history = start
    session.disconnected()
    session.connect()
    assert Send(Fetch(from_=history.rev + 1, to=history.rev + 2)) in session.receive(
        Ready(rev=history.rev + 2)
    )


# ------------------------------------------------------------------ refusal and errors


def test_refusal_drops_the_op_and_its_buffer_and_reloads(start: Start) -> None:
    name, session, history = start
    effects = session.receive(Error(code=ErrorCode.BAD_OP, message="no", seq=1))
    assert effects[0] == ServerError(ErrorCode.BAD_OP, "no", 1, False)
    if name == "synchronized":
        assert effects[1:] == []
        return
    lost = [e for e in effects if isinstance(e, Lost)][0]
    assert lost.ops[0] == insert_op(5, "A") and "bad_op" in lost.reason
    assert len(lost.ops) == (2 if name == "awaiting_with_buffer" else 1)
    assert isinstance(effects[-1], Reconnect) and type(session.state) is Synchronized
    session.disconnected()
    assert session.connect() == [Send(Hello(client="me", rev=None))]
    session.receive(history.snapshot())
    assert session.text == history.text  # the refused op is out of the text


def test_retryable_error_keeps_the_op_and_resubmit_resends_it(
    start: Start,
) -> None:
    name, session, _ = start
    state = session.state
    effects = session.receive(Error(code=ErrorCode.RATE_LIMITED, message="slow down", seq=1))
    assert effects == [ServerError(ErrorCode.RATE_LIMITED, "slow down", 1, True)]
    assert session.state == state
    expected = [] if name == "synchronized" else [SubmitOp(seq=1, base=1, ops=insert_op(5, "A"))]
    assert sent(session.resubmit()) == expected


def test_pong_changes_nothing(start: Start) -> None:
    _, session, _ = start
    state = session.state
    assert session.receive(Pong()) == [] and session.state == state


def test_message_after_disconnect_is_a_protocol_violation(start: Start) -> None:
    _, session, _ = start
    session.disconnected()
    with pytest.raises(ProtocolViolation, match="received Pong while disconnected"):
        session.receive(Pong())


# ------------------------------------------------------------------ cursors


def test_remote_cursor_is_placed_in_the_local_text(start: Start) -> None:
    name, session, history = start
    user = User(name="x")
    effects = session.receive(PresenceUpdate(client="x", rev=history.rev, cursor=Cursor(5, 5), user=user))
    # at the end of "hello" on the server, moved past the local "B" only
    expected = 6 if name in ("awaiting_with_buffer", "awaiting_resolution") else 5
    if name == "awaiting_resolution":
        expected = 5  # the server text is "<hello": cursor 5 sits before "o", and nothing is pending
    assert effects == [PresenceChanged("x", Cursor(expected, expected), user)]
    assert session.remote_cursors["x"].cursor == Cursor(expected, expected)
    session.receive(PresenceUpdate(client="x", rev=history.rev, cursor=None))
    assert "x" not in session.remote_cursors


def test_remote_cursor_follows_remote_and_local_ops() -> None:
    session, history = make("synchronized")
    session.receive(PresenceUpdate(client="x", rev=1, cursor=Cursor(2, 4)))
    session.edit(insert_op(0, "ab"))
    assert session.remote_cursors["x"].cursor == Cursor(4, 6)
    session.receive(history.commit("y", 1, delete_op(0, 3)))  # "hello" -> "lo"
    # the delete, moved past the local insert, removes "hel"; the selection collapses at its start
    assert session.remote_cursors["x"].cursor == Cursor(2, 3)


def test_presence_from_an_older_revision_is_moved_forward() -> None:
    session, history = make("synchronized")
    session.receive(history.commit("y", 1, insert_op(0, "__")))
    session.receive(PresenceUpdate(client="x", rev=1, cursor=Cursor(1, 1)))
    assert session.remote_cursors["x"].cursor == Cursor(3, 3)


def test_presence_from_a_later_revision_waits_for_it() -> None:
    session, history = make("synchronized")
    msg = history.commit("y", 1, insert_op(0, "__"))
    assert session.receive(PresenceUpdate(client="x", rev=2, cursor=Cursor(1, 1))) == []
    assert PresenceChanged("x", Cursor(1, 1), None) in session.receive(msg)


def test_own_cursor_follows_own_typing_and_is_shared_when_live() -> None:
    session, history = make("synchronized")
    assert session.set_cursor(Cursor(5, 5)) == [Send(Presence(cursor=Cursor(5, 5), rev=1))]
    session.edit(insert_op(5, "!"))
    assert session.cursor == Cursor(6, 6)
    session.receive(history.commit("y", 1, insert_op(5, "?")))  # another user's insert at the caret
    assert session.cursor == Cursor(6, 6)
    with pytest.raises(InvalidCursor, match="outside a text of 7 code points"):
        session.set_cursor(Cursor(0, 8))
    session.disconnected()
    assert session.set_cursor(Cursor(1, 1)) == []
    session.connect()
    session.receive(history.committed(2))
    # "!" is resent at ready: the cursor waits for its ack
    assert not [m for m in sent(session.receive(Ready(rev=2))) if isinstance(m, Presence)]
    assert settle(session, history) == [Presence(cursor=Cursor(1, 1), rev=3)]


def settle(session: ClientSession, history: History) -> list[Presence]:
    """Commit each op the session puts in flight, as the server would, until none is; the presence sent."""
    shared: list[Presence] = []
    while (o := session.outstanding) is not None:
        committed = history.commit("me", o.seq, o.submitted, base=o.base)
        # an op resent after a snapshot resolves by its committed op, the others by their ack
        msg = committed if isinstance(session.state, AwaitingResolution) else history.ack(committed.rev)
        shared += [m for m in sent(session.receive(msg)) if isinstance(m, Presence)]
    assert session.text == history.text
    return shared


@pytest.mark.parametrize(
    ("name", "at_once", "after_acks"),
    [
        ("synchronized", [Presence(cursor=Cursor(1, 1), rev=1)], []),
        ("awaiting_ack", [], [Presence(cursor=Cursor(1, 1), rev=2)]),
        ("awaiting_with_buffer", [], [Presence(cursor=Cursor(1, 1), rev=3)]),  # after the buffer's ack
        ("awaiting_resolution", [], [Presence(cursor=Cursor(1, 1), rev=3)]),
    ],
)
def test_cursor_is_shared_with_its_revision_only_when_no_op_is_in_flight(
    name: str, at_once: list[Presence], after_acks: list[Presence]
) -> None:
    session, history = make(name)
    assert sent(session.set_cursor(Cursor(1, 1))) == at_once
    assert settle(session, history) == after_acks


@pytest.mark.parametrize(
    ("steps", "shared"),
    [
        # the latest cursor set while waiting wins
        ([Cursor(1, 1), Cursor(2, 3)], [Presence(cursor=Cursor(2, 3), rev=2)]),
        # cleared while waiting: the clearing is what is sent
        ([Cursor(1, 1), None], [Presence(cursor=None, rev=2)]),
        # moved by a remote insert before it while waiting: sent where it went, on the revision after
        ([Cursor(1, 1), "remote"], [Presence(cursor=Cursor(3, 3), rev=3)]),
        # moved by the own typing at the caret while waiting: it follows the text typed
        ([Cursor(6, 6), "type"], [Presence(cursor=Cursor(7, 7), rev=3)]),
    ],
)
def test_cursor_held_for_the_ack(steps: list[object], shared: list[Presence]) -> None:
    session, history = make("awaiting_ack")  # "helloA", the "A" in flight
    for step in steps:
        if step == "remote":
            assert not sent(session.receive(history.commit("y", 1, insert_op(0, "__"))))
        elif step == "type":
            assert not [m for m in sent(session.edit(insert_op(6, "!"))) if isinstance(m, Presence)]
        else:
            assert session.set_cursor(step) == []  # type: ignore[arg-type]
    assert settle(session, history) == shared


def test_held_cursor_is_not_sent_twice_and_new_ones_go_at_once() -> None:
    session, history = make("awaiting_ack")
    session.set_cursor(Cursor(1, 1))
    assert settle(session, history) == [Presence(cursor=Cursor(1, 1), rev=2)]
    session.edit(insert_op(0, "x"))
    assert settle(session, history) == []  # nothing was set meanwhile
    assert sent(session.set_cursor(Cursor(0, 0))) == [Presence(cursor=Cursor(0, 0), rev=3)]


@pytest.mark.parametrize(
    ("author", "expected"),
    [("x", Cursor(6, 6)), ("y", Cursor(5, 5))],  # x's own insert at its caret pushes it; y's does not
)
def test_a_cursor_moves_through_an_insert_at_it_as_its_owner_moves_it(author: str, expected: Cursor) -> None:
    live, history = make("synchronized")
    live.receive(PresenceUpdate(client="x", rev=1, cursor=Cursor(5, 5)))
    live.receive(history.commit(author, 1, insert_op(5, "!")))
    assert live.remote_cursors["x"].cursor == expected
    # the same cursor arriving late, from before the insert, is moved the same way
    late, _ = make("synchronized")
    late.receive(history.committed(2))
    late.receive(PresenceUpdate(client="x", rev=1, cursor=Cursor(5, 5)))
    assert late.remote_cursors["x"].cursor == expected
