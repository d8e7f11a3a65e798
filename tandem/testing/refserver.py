"""An in-memory reference server and network for driving `ClientSession`s in tests.

Plain Python after docs/protocol.md: one op log with its hash chain, exactly-once by
(client, seq), the server's OT step `ot.rebase`, and one link per connection carrying
messages in order each way. It refuses ops holding `POISON`, so refusals can be tested,
and after `compact()` it answers a resuming hello with a snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tandem.ot import InvalidOperation, Operation, apply, check, normalize, rebase
from tandem.ot.integrity import Record, first_bad_revision, genesis_hash, next_hash
from tandem.ot.protocol import (
    Ack,
    ClientMessage,
    CommittedOp,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Ping,
    Pong,
    Presence,
    PresenceUpdate,
    Ready,
    ServerMessage,
    Snapshot,
    SubmitOp,
)

DOC = "doc"
POISON = "\u2620"


@dataclass(eq=False)
class Link:
    """One connection: client-to-server and server-to-client queues, each in order."""

    client: str
    up: deque[ClientMessage] = field(default_factory=deque)
    down: deque[ServerMessage] = field(default_factory=deque)
    open: bool = True
    greeted: bool = False


class RefServer:
    def __init__(self) -> None:
        self.texts = [""]  # the text at each revision
        self.log: list[Record] = []
        self.hashes = [genesis_hash(DOC)]
        self.committed: dict[tuple[str, int], int] = {}
        self.compacted = 0  # a hello resuming from below this revision gets a snapshot
        self.links: list[Link] = []

    @property
    def head(self) -> int:
        return len(self.log)

    def compact(self) -> None:
        self.compacted = self.head

    def connect(self, client: str) -> Link:
        link = Link(client)
        self.links.append(link)
        return link

    def close(self, link: Link) -> None:
        link.open = False
        link.up.clear()
        link.down.clear()
        self.links.remove(link)

    def _committed(self, rev: int) -> CommittedOp:
        r = self.log[rev - 1]
        return CommittedOp(rev=rev, client=r.client, seq=r.seq, ops=r.ops, hash=self.hashes[rev])

    def handle(self, link: Link, msg: ClientMessage) -> None:
        """Process one message from ``link``, queueing the replies and broadcasts."""
        out = link.down
        match msg:
            case Hello(rev=rev):
                link.greeted = True
                if rev is None or rev < self.compacted:
                    out.append(Snapshot(rev=self.head, text=self.texts[-1], hash=self.hashes[-1]))
                elif rev > self.head:
                    out.append(Error(code=ErrorCode.REV_AHEAD, message=f"rev {rev} > {self.head}"))
                    return
                else:
                    out.extend(self._committed(r) for r in range(rev + 1, self.head + 1))
                out.append(Ready(rev=self.head))
            case SubmitOp():
                self._submit(link, msg)
            case Fetch(from_=start, to=to):
                last = self.head if to is None else min(to, self.head)
                out.extend(self._committed(r) for r in range(max(start, 1), last + 1))
            case Presence(cursor=cursor, user=user, rev=rev):
                stamp = self.head if rev is None else rev
                update = PresenceUpdate(client=link.client, rev=stamp, cursor=cursor, user=user)
                for other in self.links:
                    if other is not link and other.greeted:
                        other.down.append(update)
            case Ping():
                out.append(Pong())

    def _submit(self, link: Link, msg: SubmitOp) -> None:
        key = (link.client, msg.seq)
        if key in self.committed:
            rev = self.committed[key]
            link.down.append(Ack(seq=msg.seq, rev=rev, hash=self.hashes[rev]))
            return
        if any(POISON in getattr(c, "content", "") for c in msg.ops):
            link.down.append(Error(code=ErrorCode.BAD_OP, message="poisoned op", seq=msg.seq))
            return
        try:
            check(msg.ops, len(self.texts[msg.base]))
            ops = rebase(normalize(msg.ops), [r.ops for r in self.log[msg.base :]])
            text = apply(self.texts[-1], ops)
        except (InvalidOperation, IndexError) as e:
            link.down.append(Error(code=ErrorCode.BAD_OP, message=str(e), seq=msg.seq))
            return
        rev = self.head + 1
        self.log.append(Record(rev, link.client, msg.seq, ops))
        self.texts.append(text)
        self.hashes.append(next_hash(self.hashes[-1], rev, link.client, msg.seq, ops))
        self.committed[key] = rev
        link.down.append(Ack(seq=msg.seq, rev=rev, hash=self.hashes[rev]))
        for other in self.links:
            if other is not link and other.greeted:
                other.down.append(self._committed(rev))


def check_server(server: RefServer) -> None:
    """The log replays to the text, its chain verifies, and (client, seq) is unique."""
    text = ""
    for record in server.log:
        text = apply(text, record.ops)
    assert text == server.texts[-1], "replaying the log does not give the server's text"
    chain = zip(server.log, server.hashes[1:], strict=True)
    assert first_bad_revision(DOC, chain) is None, "the hash chain does not verify"
    keys = [(r.client, r.seq) for r in server.log]
    assert len(keys) == len(set(keys)), f"an op was committed twice: {keys}"


def expected_text(server: RefServer, rev: int, pending: tuple[Operation, ...]) -> str:
    text = server.texts[rev]
    for op in pending:
        text = apply(text, op)
    return text
