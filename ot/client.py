"""The sans-IO client state machine of protocol version 1 (docs/protocol.md, docs/ot.md).

A `ClientSession` holds one client's replica of one document. Its caller owns the
socket and the editor: it feeds in local edits (`edit`), decoded server messages
(`receive`) and connection events (`connect`, `disconnected`), and performs the
effects each call returns (`Send` a message, show a `TextChanged`, tell the user
about `Lost` edits, ...). The session never performs IO and never reads a clock.

Rules (as h11 keeps its state module):

1. Every state and every transition lives in this file. The states are frozen
   values; the pure functions `local_edit`, `remote_op` and `acknowledged` compute the
   next state, and `ClientSession` only adds revisions, sequencing and effects.
2. The local text is always ``server text at rev`` + outstanding op + buffer: the
   edits the server has not committed yet are applied locally, and every remote op
   is transformed past them before it reaches the text.
3. One op in flight at a time. Edits made while it is in flight compose into one
   buffer, sent when the ack arrives.
4. The in-flight op is resent exactly as first submitted (same seq, same base, same
   ops); the server's exactly-once rule by (client, seq) makes that safe.
5. Revisions are taken strictly in order: a message for a revision the session
   holds is ignored; one that skips a revision is dropped and the gap fetched.
6. The own uncommitted op wins insert ties against incoming committed ops (it will
   be committed later), the tie rule of the contract.
7. The own cursor is shared only while no op is in flight, with the revision its
   text is the server's at (the ``rev`` of `Presence`); one set meanwhile waits for the ack
   (the latest wins). Every cursor moves through an op as its owner's own client
   moves it: an insert exactly at a cursor pushes it only if the op is the owner's.
   The cursors themselves are kept by `ot.presence.PresenceTracker`.

The states::

    Synchronized --edit--> AwaitingAck --edit--> AwaitingWithBuffer
         ^                  |     ^                   |
         +------ack---------+     +------ack----------+  (the buffer is sent)

    AwaitingResolution: a snapshot replaced the text while an op was in flight; the
    op is resent, and its ack (or its committed op) tells whether it is in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from tandem.ot.algebra import compose, transform
from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.effects import (
    Acknowledged,
    CaughtUp,
    Diverged,
    Effect,
    Lost,
    Reconnect,
    Send,
    ServerError,
    TextChanged,
)
from tandem.ot.errors import InvalidCursor, InvalidOperation, ProtocolViolation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import IDENTITY, Operation, apply, check, normalize, replacement
from tandem.ot.presence import Peer, PresenceTracker
from tandem.ot.protocol import (
    Ack,
    CommittedOp,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Pong,
    PresenceUpdate,
    Ready,
    ServerMessage,
    Snapshot,
    SubmitOp,
    User,
)

# Error codes that do not refuse an op for good: it may be resent (`ClientSession.resubmit`).
RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


# ---------------------------------------------------------------- states


@dataclass(frozen=True, slots=True)
class Outstanding:
    """The op in flight: ``submitted`` as sent on ``base``, ``ops`` the same op moved to the current rev."""

    seq: int
    base: int
    submitted: Operation
    ops: Operation
    sent: bool = True  # False while it waits for the connection to be ready

    def message(self) -> SubmitOp:
        return SubmitOp(seq=self.seq, base=self.base, ops=self.submitted)


@dataclass(frozen=True, slots=True)
class Synchronized:
    """Every local edit is committed."""


@dataclass(frozen=True, slots=True)
class AwaitingAck:
    """One op in flight, nothing else pending."""

    outstanding: Outstanding


@dataclass(frozen=True, slots=True)
class AwaitingWithBuffer:
    """One op in flight, and later local edits composed into ``buffer``."""

    outstanding: Outstanding
    buffer: Operation


@dataclass(frozen=True, slots=True)
class AwaitingResolution:
    """An op in flight that is *not* in the local text.

    A snapshot replaced the text while the op was in flight, and the snapshot may or
    may not contain it. The op is resent; an ack at or below the current revision
    means the text holds it, a later one is fetched and applied like a remote op.
    ``buffer`` holds the edits made since, based on the local text (IDENTITY if none).
    """

    outstanding: Outstanding
    buffer: Operation


State: TypeAlias = Synchronized | AwaitingAck | AwaitingWithBuffer | AwaitingResolution
SYNCHRONIZED = Synchronized()


def local_edit(state: State, op: Operation, new: Outstanding) -> State:
    """The state after a local edit ``op``; ``new`` is the op to put in flight if none is."""
    match state:
        case Synchronized():
            return AwaitingAck(new)
        case AwaitingAck(outstanding):
            return AwaitingWithBuffer(outstanding, op)
        case AwaitingWithBuffer(outstanding, buffer):
            return AwaitingWithBuffer(outstanding, compose(buffer, op))
        case AwaitingResolution(outstanding, buffer):
            return AwaitingResolution(outstanding, compose(buffer, op))


def remote_op(state: State, op: Operation) -> tuple[State, Operation]:
    """The next state and the op to apply to the local text, for a committed remote ``op``."""
    match state:
        case Synchronized():
            return state, op
        case AwaitingAck(o):
            #          /\
            # o.ops   /  \  op
            #        /    \
            #        \    /
            #   op'   \  /  o.ops'
            #          \/
            # the outstanding op wins the tie: it is committed after op
            o_ops, op_prime = transform(o.ops, op)
            return AwaitingAck(_moved(o, o_ops)), op_prime
        case AwaitingWithBuffer(o, buffer):
            #                /\
            #       o.ops   /  \  op
            #              /    \
            #             /\    /
            #    buffer  /  \  /  o.ops'
            #           /  op' /
            #           \    /
            #      op''  \  /  buffer'
            #             \/
            # op'' applies to the local text; o.ops' and buffer' are what is pending
            o_ops, op_prime = transform(o.ops, op)
            buffer_prime, op_2 = transform(buffer, op_prime)
            return AwaitingWithBuffer(_moved(o, o_ops), buffer_prime), op_2
        case AwaitingResolution(o, buffer):
            # the outstanding op is not in the text: only the buffer lies between
            buffer_prime, op_prime = transform(buffer, op)
            return AwaitingResolution(o, buffer_prime), op_prime


def acknowledged(state: State, new: Outstanding | None) -> State:
    """The state after the in-flight op is committed; ``new`` carries the buffer, if any, to send."""
    if new is None or not new.ops:
        return SYNCHRONIZED
    return AwaitingAck(new)


def _moved(o: Outstanding, ops: Operation) -> Outstanding:
    return Outstanding(o.seq, o.base, o.submitted, ops, o.sent)


def _pending(state: State) -> tuple[Outstanding | None, Operation]:
    match state:
        case Synchronized():
            return None, IDENTITY
        case AwaitingAck(o):
            return o, IDENTITY
        case AwaitingWithBuffer(o, buffer) | AwaitingResolution(o, buffer):
            return o, buffer


class Phase(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"  # hello sent, replay or snapshot under way
    LIVE = "live"  # ready received
    CLOSING = "closing"  # a Reconnect was asked for: the rest of this connection is ignored


# ---------------------------------------------------------------- the session


class ClientSession:
    """One client's replica of one document, driven by its caller (see the module docstring).

    ``client_id`` must not be reused with a fresh ``seq`` counter: the server would take
    the new ops for duplicates of old ones. Pass the next unused ``seq`` when resuming one.
    """

    def __init__(
        self,
        client_id: str,
        *,
        user: User | None = None,
        token: str | None = None,
        seq: int = 1,
        verify: bool = True,
    ) -> None:
        self.client_id = client_id
        self.token = token
        self.user = user
        self.verify = verify
        self.text = ""
        self.rev: int | None = None  # None until the first snapshot
        self.hash: str | None = None
        self.state: State = SYNCHRONIZED
        self.next_seq = seq
        self.phase = Phase.DISCONNECTED
        self.presence = PresenceTracker(client_id)
        self._reload = False
        self._requested = 0  # the highest revision asked for by a fetch on this connection

    @property
    def outstanding(self) -> Outstanding | None:
        """The op in flight, if any."""
        return _pending(self.state)[0]

    @property
    def buffer(self) -> Operation:
        """The local edits waiting behind the op in flight (IDENTITY if none)."""
        return _pending(self.state)[1]

    @property
    def reloading(self) -> bool:
        """A reload was asked for: the text holds refused or unverified edits until its snapshot."""
        return self._reload

    @property
    def cursor(self) -> Cursor | None:
        """The own cursor in the local text (set it with `set_cursor`)."""
        return self.presence.cursor

    @property
    def remote_cursors(self) -> dict[str, Peer]:
        """The other clients' cursors in the local text, by client id."""
        return self.presence.peers

    # ------------------------------------------------------------ connection

    def connect(self) -> list[Effect]:
        """A new connection is open: say hello, resuming from the last revision held."""
        self.phase = Phase.CONNECTING
        self._requested = 0
        rev = None if self._reload else self.rev
        return [Send(Hello(client=self.client_id, rev=rev, token=self.token))]

    def disconnected(self) -> list[Effect]:
        """The connection is gone; messages still queued from it must not be fed in."""
        self.phase = Phase.DISCONNECTED
        self.presence.disconnected()
        return []

    def resubmit(self) -> list[Effect]:
        """Resend the in-flight op unchanged (after a retryable error)."""
        o, _ = _pending(self.state)
        if o is None or not o.sent or self.phase is not Phase.LIVE:
            return []
        return [Send(o.message())]

    # ------------------------------------------------------------ local input

    def edit(self, op: Operation) -> list[Effect]:
        """Apply a local edit made on the current text; send it, or buffer it behind the op in flight."""
        if self.rev is None:
            raise ProtocolViolation("edit before the first snapshot: the document's text is not known yet")
        check(op, len(self.text))
        op = normalize(op)
        if not op:
            return []
        self.text = apply(self.text, op)
        live = self.phase is Phase.LIVE
        new = Outstanding(self.next_seq, self.rev, op, op, sent=live)
        was = self.state
        self.state = local_edit(self.state, op, new)
        effects: list[Effect] = [TextChanged(op, remote=False)]
        if isinstance(was, Synchronized):
            self.next_seq += 1
            if live:
                effects.append(Send(new.message()))
        self.presence.move(op, self.client_id)
        return effects

    def set_cursor(self, cursor: Cursor | None) -> list[Effect]:
        """Set the own cursor (local text coordinates); shared when live, after the ack of an op in flight."""
        n = len(self.text)
        if cursor is not None and not (0 <= cursor.anchor <= n and 0 <= cursor.head <= n):
            raise InvalidCursor(f"cursor {cursor.anchor}..{cursor.head} is outside a text of {n} code points")
        self.presence.cursor = cursor
        if self.phase is not Phase.LIVE:
            return []  # shared at ready
        return self.presence.share(self.user, self.rev, in_flight=self.outstanding is not None)

    # ------------------------------------------------------------ server input

    def receive(self, msg: ServerMessage) -> list[Effect]:
        """Handle one decoded server message; returns the effects to perform, in order."""
        if self.phase is Phase.DISCONNECTED:
            raise ProtocolViolation(f"received {type(msg).__name__} while disconnected")
        if self.phase is Phase.CLOSING:
            return []
        match msg:
            case Snapshot():
                return self._on_snapshot(msg)
            case CommittedOp():
                return self._on_committed(msg)
            case Ack():
                return self._on_ack(msg)
            case Ready():
                return self._on_ready(msg)
            case PresenceUpdate():
                return self.presence.receive(msg, self.rev, self._to_local)
            case Error():
                return self._on_error(msg)
            case Pong():
                return []
        raise ProtocolViolation(f"not a server message: {msg!r}")

    def _on_snapshot(self, msg: Snapshot) -> list[Effect]:
        if msg.rev == self.rev and msg.hash == self.hash and not self._reload:
            return []  # the revision held already: nothing pending is affected
        self._reload = False
        effects: list[Effect] = []
        o, buffer = _pending(self.state)
        if o is not None and o.sent:
            # may or may not be in the snapshot: resent after ready, resolved by its ack
            self.state = AwaitingResolution(o, IDENTITY)
            if buffer:
                effects.append(Lost((buffer,), "a snapshot replaced the text under edits not yet sent"))
        else:
            self.state = SYNCHRONIZED
            if o is not None:
                effects.append(Lost((o.ops, buffer) if buffer else (o.ops,), "a snapshot replaced the text"))
        replace = replacement(self.text, msg.text)
        self.text, self.rev, self.hash = msg.text, msg.rev, msg.hash
        self.presence.forget_history()
        if replace:
            effects.append(TextChanged(replace))
            self.presence.move(replace, None)
        return effects

    def _on_ready(self, msg: Ready) -> list[Effect]:
        if self.rev is None:
            raise ProtocolViolation("received ready before any snapshot")
        self.phase = Phase.LIVE
        effects: list[Effect] = [CaughtUp(self.rev)]
        effects += self._fetch_through(msg.rev)
        o, _ = _pending(self.state)
        if o is not None:
            if not o.sent:
                o = Outstanding(o.seq, self.rev, o.ops, o.ops)
                self.state = _with_outstanding(self.state, o)
            effects.append(Send(o.message()))
        return effects + self.presence.ready(self.user, self.rev, in_flight=o is not None)

    def _on_committed(self, msg: CommittedOp) -> list[Effect]:
        if (early := self._in_order(msg.rev)) is not None:
            return early
        o, _ = _pending(self.state)
        if o is not None and o.sent and msg.client == self.client_id and msg.seq == o.seq:
            if isinstance(self.state, AwaitingResolution):
                effects = self._apply_remote(msg)
                return effects if self.phase is Phase.CLOSING else effects + self._resolve(msg.seq, msg.rev)
            return self._on_ack(Ack(seq=msg.seq, rev=msg.rev, hash=msg.hash))
        return self._apply_remote(msg)

    def _apply_remote(self, msg: CommittedOp) -> list[Effect]:
        assert self.rev is not None and self.hash is not None  # _in_order checked
        if self.verify and next_hash(self.hash, msg.rev, msg.client, msg.seq, msg.ops) != msg.hash:
            return self._diverged(msg.rev, "the op's hash does not follow the chain held")
        try:
            self.state, op = remote_op(self.state, msg.ops)
            text = apply(self.text, op)
        except InvalidOperation as e:
            return self._diverged(msg.rev, f"the committed op does not fit the replica: {e}")
        self.text, self.rev, self.hash = text, msg.rev, msg.hash
        self.presence.remember(msg.rev, msg.client, msg.ops)
        self.presence.move(op, msg.client)
        effects: list[Effect] = [TextChanged(op)] if op else []
        return effects + self.presence.release(self.rev, self._to_local)

    def _on_ack(self, msg: Ack) -> list[Effect]:
        o, _ = _pending(self.state)
        if o is None or not o.sent or msg.seq != o.seq:
            return []  # a duplicate ack of an op committed before
        if isinstance(self.state, AwaitingResolution):
            assert self.rev is not None
            if msg.rev <= self.rev:
                return self._resolve(msg.seq, msg.rev)  # the snapshot held it already
            return self._fetch_through(msg.rev)  # fetch the committed op; it resolves the op
        if (early := self._in_order(msg.rev)) is not None:
            return early
        assert self.hash is not None
        if self.verify and next_hash(self.hash, msg.rev, self.client_id, msg.seq, o.ops) != msg.hash:
            return self._diverged(msg.rev, "the ack's hash does not match the op in flight")
        self.rev, self.hash = msg.rev, msg.hash
        self.presence.remember(msg.rev, self.client_id, o.ops)
        return self._resolve(msg.seq, msg.rev) + self.presence.release(self.rev, self._to_local)

    def _resolve(self, seq: int, rev: int) -> list[Effect]:
        """The op in flight is in the text at ``self.rev``: send the buffer, if any."""
        assert self.rev is not None
        _, buffer = _pending(self.state)
        new = Outstanding(self.next_seq, self.rev, buffer, buffer, sent=self.phase is Phase.LIVE)
        self.state = acknowledged(self.state, new)
        effects: list[Effect] = [Acknowledged(seq, rev)]
        if buffer:
            self.next_seq += 1
            if new.sent:
                effects.append(Send(new.message()))
        elif self.phase is Phase.LIVE:
            effects += self.presence.acknowledged(self.user, self.rev)
        return effects

    def _on_error(self, msg: Error) -> list[Effect]:
        retryable = msg.code in RETRYABLE
        effects: list[Effect] = [ServerError(msg.code, msg.message, msg.seq, retryable)]
        o, buffer = _pending(self.state)
        if o is None or msg.seq != o.seq or retryable:
            return effects
        # refused for good: the op (applied locally) and everything built on it go; the
        # snapshot of the reload takes them out of the text
        lost = (o.ops, buffer) if buffer else (o.ops,)
        self.state = SYNCHRONIZED
        self._reload = True
        self.phase = Phase.CLOSING
        return effects + [
            Lost(lost, f"the server refused op {o.seq}: {msg.code}: {msg.message}"),
            Reconnect("reloading the document after a refused op"),
        ]

    def _diverged(self, rev: int, detail: str) -> list[Effect]:
        # The in-flight op may still be committed: keep it; a snapshot will resolve it.
        self._reload = True
        self.phase = Phase.CLOSING
        return [Diverged(rev, detail), Reconnect(f"reloading the document: {detail}")]

    def _in_order(self, rev: int) -> list[Effect] | None:
        """None when ``rev`` is the next revision; otherwise the effects of skipping the message."""
        if self.rev is None:
            raise ProtocolViolation(f"received revision {rev} before any snapshot")
        if rev == self.rev + 1:
            return None
        return self._fetch_through(rev) if rev > self.rev else []

    def _fetch_through(self, last: int) -> list[Effect]:
        """Ask for the revisions up to ``last`` that are neither held nor asked for already.

        A message for the last revision asked for, arriving while the gap is still open,
        means the answer came without some revisions: those are asked for again.
        """
        assert self.rev is not None
        if last <= self.rev or last < self._requested:
            return []
        start = self.rev + 1 if last == self._requested else max(self.rev, self._requested) + 1
        self._requested = last
        return [Send(Fetch(from_=start, to=last))]

    def _to_local(self, cursor: Cursor) -> Cursor:
        """A cursor in the server's text at ``rev``, moved through the own edits the local text adds."""
        o, buffer = _pending(self.state)
        if o is not None and not isinstance(self.state, AwaitingResolution):
            cursor = transform_cursor(cursor, o.ops)
        cursor = transform_cursor(cursor, buffer)
        n = len(self.text)
        return Cursor(min(max(cursor.anchor, 0), n), min(max(cursor.head, 0), n))


def _with_outstanding(state: State, o: Outstanding) -> State:
    match state:
        case AwaitingAck():
            return AwaitingAck(o)
        case AwaitingWithBuffer(_, buffer):
            return AwaitingWithBuffer(o, buffer)
        case AwaitingResolution(_, buffer):
            return AwaitingResolution(o, buffer)
    return state
