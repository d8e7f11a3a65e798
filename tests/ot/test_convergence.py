"""Convergence: three client state machines, a reference server and a faulty network.

The network delivers messages in order per connection (as the protocol promises) but
picks which link moves next at random; it also cuts connections (queued messages are
lost, the client resumes), duplicates resubmissions, drops single ops and acks (the
client must notice the gap), compacts the server's log (resumes come as snapshots),
and carries ops the server refuses. Every insert carries a unique token character
that no delete removes, so at quiescence each edit can be found exactly once, or is
known to be lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tandem.ot import (
    Acknowledged,
    AwaitingResolution,
    ClientSession,
    Cursor,
    Delete,
    Diverged,
    Effect,
    Insert,
    Lost,
    Operation,
    Phase,
    Reconnect,
    Retain,
    Send,
    Synchronized,
    insert_op,
    normalize,
)
from tandem.ot.protocol import Ack, CommittedOp, Fetch, SubmitOp
from tandem.testing.refserver import POISON, Link, RefServer, check_server, expected_text
from tandem.testing.strategies import contents

CLIENTS = 3
TOKEN_BASE = 0xF0000  # astral private-use characters: one per insert, never deleted


def is_token(ch: str) -> bool:
    return ord(ch) >= TOKEN_BASE


def tokens_of(ops: tuple[Operation, ...]) -> set[str]:
    return {ch for op in ops for c in op if type(c) is Insert for ch in c.content if is_token(ch)}


@dataclass
class Peer:
    """A session with the driver a real client would have around it."""

    session: ClientSession
    link: Link | None = None
    last_submit: SubmitOp | None = None
    lost: set[str] = field(default_factory=set)
    acked: list[tuple[int, int]] = field(default_factory=list)


class Convergence(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.server = RefServer()
        self.peers = [Peer(ClientSession(f"c{i}")) for i in range(CLIENTS)]
        self.inserted: set[str] = set()
        self.next_token = 0
        for i in range(CLIENTS):
            self.reconnect(i)

    # ------------------------------------------------------------ the driver

    def perform(self, i: int, effects: list[Effect]) -> None:
        peer = self.peers[i]
        for effect in effects:
            match effect:
                case Send(message) if peer.link is not None:
                    peer.link.up.append(message)
                    event(f"send {type(message).__name__}")
                    if isinstance(message, SubmitOp):
                        peer.last_submit = message
                case Reconnect():
                    self.cut(i)
                case Lost(ops, reason):
                    peer.lost |= tokens_of(ops)
                    event(f"lost: {reason.split(':')[0]}")
                case Acknowledged(seq, rev):
                    peer.acked.append((seq, rev))
                case Diverged(rev, detail):
                    raise AssertionError(f"client {i} diverged at rev {rev}: {detail}")

    def cut(self, i: int) -> None:
        peer = self.peers[i]
        if peer.link is not None:
            self.server.close(peer.link)
            peer.link = None
            self.perform(i, peer.session.disconnected())

    # ------------------------------------------------------------ rules
    # Each rule picks among the clients it can act on, so no step is wasted.

    def _pick(self, data: st.DataObject, which: list[int]) -> int:
        return data.draw(st.sampled_from(which), label="client")

    def _editors(self) -> list[int]:
        return [i for i, p in enumerate(self.peers) if p.session.rev is not None]

    def _links(self, has: str = "") -> list[int]:
        return [
            i for i, p in enumerate(self.peers) if p.link is not None and (not has or getattr(p.link, has))
        ]

    @precondition(lambda self: any(p.link is None for p in self.peers))
    @rule(data=st.data())
    def reconnect_one(self, data: st.DataObject) -> None:
        self.reconnect(self._pick(data, [i for i, p in enumerate(self.peers) if p.link is None]))

    def reconnect(self, i: int) -> None:
        peer = self.peers[i]
        if peer.link is None:
            peer.link = self.server.connect(peer.session.client_id)
            self.perform(i, peer.session.connect())

    @precondition(lambda self: bool(self._editors()))
    @rule(data=st.data(), poison=st.sampled_from([False] * 7 + [True]))
    def edit(self, data: st.DataObject, poison: bool) -> None:
        i = self._pick(data, self._editors())
        session = self.peers[i].session
        text = session.text
        pos = data.draw(st.integers(0, len(text)), label="position")
        span = 0
        while pos + span < len(text) and not is_token(text[pos + span]) and span < 4:
            span += 1
        delete = data.draw(st.integers(0, span), label="delete")
        parts: list[Retain | Insert | Delete] = [Retain(pos)] if pos else []
        if data.draw(st.booleans(), label="insert") or not delete:
            token = chr(TOKEN_BASE + self.next_token)
            self.next_token += 1
            self.inserted.add(token)
            parts.append(Insert(data.draw(contents, label="content") + token + (POISON if poison else "")))
        if delete:
            parts.append(Delete(delete))
        self.perform(i, session.edit(normalize(parts)))

    @precondition(lambda self: bool(self._editors()))
    @rule(data=st.data())
    def move_cursor(self, data: st.DataObject) -> None:
        i = self._pick(data, self._editors())
        n = len(self.peers[i].session.text)
        cursor = Cursor(data.draw(st.integers(0, n)), data.draw(st.integers(0, n)))
        self.perform(i, self.peers[i].session.set_cursor(cursor))

    @precondition(lambda self: bool(self._links("up")))
    @rule(data=st.data())
    def deliver_up(self, data: st.DataObject) -> None:
        link = self.peers[self._pick(data, self._links("up"))].link
        assert link is not None
        self.server.handle(link, link.up.popleft())

    @precondition(lambda self: bool(self._links("down")))
    @rule(data=st.data())
    def deliver_down(self, data: st.DataObject) -> None:
        i = self._pick(data, self._links("down"))
        peer = self.peers[i]
        assert peer.link is not None
        self.perform(i, peer.session.receive(peer.link.down.popleft()))
        event(f"state {type(peer.session.state).__name__}")

    @precondition(lambda self: bool(self._links("up")))
    @rule()
    def server_catches_up(self) -> None:
        """The server takes every queued message at once, so replies pile up behind slow links."""
        for i in self._links("up"):
            link = self.peers[i].link
            while link is not None and link.up:
                self.server.handle(link, link.up.popleft())

    @precondition(lambda self: bool(self._links()))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        self.cut(self._pick(data, self._links()))

    @precondition(lambda self: any(p.last_submit is not None and p.link is not None for p in self.peers))
    @rule(data=st.data())
    def duplicate_resubmission(self, data: st.DataObject) -> None:
        peers = [i for i, p in enumerate(self.peers) if p.last_submit is not None and p.link is not None]
        peer = self.peers[self._pick(data, peers)]
        if peer.session.phase is Phase.LIVE and peer.link is not None and peer.last_submit is not None:
            peer.link.up.append(peer.last_submit)
            event("duplicate")

    @precondition(lambda self: bool(self._gappable()))
    @rule(data=st.data())
    def lose_one_op(self, data: st.DataObject) -> None:
        """Lose one op or ack that a later revision follows, so the client can see the gap."""
        link = self.peers[self._pick(data, self._gappable())].link
        assert link is not None
        del link.down[data.draw(st.sampled_from(losable(link)))]
        event("lose one op")

    def _gappable(self) -> list[int]:
        return [i for i, p in enumerate(self.peers) if p.link is not None and losable(p.link)]

    @rule()
    def compact(self) -> None:
        self.server.compact()

    @rule()
    def quiesce(self) -> None:
        settle(self)

    # ------------------------------------------------------------ invariants

    @invariant()
    def server_is_consistent(self) -> None:
        check_server(self.server)

    @invariant()
    def replicas_hold_server_text_plus_pending(self) -> None:
        for peer in self.peers:
            check_replica(self.server, peer.session)

    def teardown(self) -> None:
        if hasattr(self, "server"):
            settle(self)


def losable(link: Link) -> list[int]:
    """The queued ops and acks that a message for a later revision follows."""
    revs = [(k, m.rev) for k, m in enumerate(link.down) if isinstance(m, CommittedOp | Ack)]
    return [k for n, (k, rev) in enumerate(revs) if any(later > rev for _, later in revs[n + 1 :])]


def check_replica(server: RefServer, session: ClientSession) -> None:
    """The local text is the server's text at the session's rev plus what is pending."""
    if session.rev is None or session.reloading:
        return
    o = session.outstanding
    in_text = o is not None and not isinstance(session.state, AwaitingResolution)
    pending = (o.ops, session.buffer) if in_text and o is not None else (session.buffer,)
    assert session.text == expected_text(server, session.rev, pending), (
        f"{session.client_id} at rev {session.rev} holds {session.text!r}"
    )
    for client, peer in session.remote_cursors.items():
        n = len(session.text)
        assert 0 <= peer.cursor.anchor <= n and 0 <= peer.cursor.head <= n, f"cursor of {client} out of text"


def settle(machine: Convergence, limit: int = 10_000) -> None:
    """Reconnect everyone and deliver until nothing moves; then every replica equals the server."""
    for _ in range(limit):
        moved = False
        for i, peer in enumerate(machine.peers):
            machine.reconnect(i)
            link = peer.link
            if link is not None and link.up:
                machine.server.handle(link, link.up.popleft())
                moved = True
            if peer.link is not None and peer.link.down:
                machine.perform(i, peer.session.receive(peer.link.down.popleft()))
                moved = True
        if not moved:
            break
    else:
        raise AssertionError(f"no quiescence after {limit} rounds")
    server = machine.server
    text = server.texts[-1]
    for peer in machine.peers:
        s = peer.session
        assert s.phase is Phase.LIVE and isinstance(s.state, Synchronized), f"{s.client_id} in {s.state}"
        assert (s.rev, s.text) == (server.head, text), f"{s.client_id} at {s.rev} holds {s.text!r}"
        for seq, rev in peer.acked:
            record = server.log[rev - 1]
            assert (record.client, record.seq) == (s.client_id, seq), f"ack of {seq} names rev {rev}"
    lost = set().union(*(p.lost for p in machine.peers))
    for token in machine.inserted:
        expected = 0 if token in lost else 1
        assert text.count(token) == expected, f"token {ord(token):x} appears {text.count(token)} times"


TestConvergence = Convergence.TestCase
TestConvergence.settings = settings(
    settings(), max_examples=3 * settings().max_examples, stateful_step_count=60
)


# ------------------------------------------------------------ shrunk failures, pinned


def test_a_fetch_answer_missing_the_own_op_is_asked_again() -> None:
    """The ack is lost, the gap fetched, and the answer loses the own op too (found by the machine)."""
    server = RefServer()
    links = {c: server.connect(c) for c in ("a", "b")}
    sessions = {c: ClientSession(c) for c in links}

    def run(c: str, effects: list[Effect]) -> None:
        links[c].up.extend(e.message for e in effects if isinstance(e, Send))

    def deliver_up(c: str) -> None:
        while links[c].up:
            server.handle(links[c], links[c].up.popleft())

    def deliver_down(c: str) -> None:
        while links[c].down:
            run(c, sessions[c].receive(links[c].down.popleft()))

    for c in links:
        run(c, sessions[c].connect())
        deliver_up(c)
        deliver_down(c)
    run("a", sessions["a"].edit(insert_op(0, "A")))
    run("b", sessions["b"].edit(insert_op(0, "B")))
    deliver_up("a")
    deliver_up("b")
    del links["a"].down[0]  # a's ack is lost; b's op follows it
    deliver_down("a")
    assert list(links["a"].up) == [Fetch(from_=1, to=2)]
    deliver_up("a")
    del links["a"].down[0]  # and the answer loses a's own op
    deliver_down("a")
    assert list(links["a"].up) == [Fetch(from_=1, to=2)]  # asked again
    deliver_up("a")
    deliver_down("a")
    assert (sessions["a"].text, sessions["a"].rev) == (server.texts[-1], 2)
    assert isinstance(sessions["a"].state, Synchronized)
