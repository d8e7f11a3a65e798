"""Presence in one client's replica: its own cursor, the others' cursors, and the updates
that arrive before or after the revision they were made on (docs/ot.md, rule 7 of
`ot.client`).

A `PresenceTracker` knows revisions and who wrote each op, not the state machine: the
`ClientSession` tells it what was committed and moved the text, and hands it ``to_local``,
which moves a cursor from the server's text at the session's revision into the local text
(through the own edits not committed yet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.effects import Effect, PresenceChanged, Send
from tandem.ot.operation import Operation
from tandem.ot.protocol import Presence, PresenceUpdate, User

# How many committed ops the tracker keeps to move late presence updates forward.
PRESENCE_HISTORY = 256

ToLocal = Callable[[Cursor], Cursor]


class Peer(NamedTuple):
    """Another client's cursor in the local text, and its display data."""

    cursor: Cursor
    user: User | None


class PresenceTracker:
    """The cursors of one replica, each kept where its owner's client would show it."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.cursor: Cursor | None = None  # the own cursor, in the local text
        self.peers: dict[str, Peer] = {}
        self._history: deque[tuple[int, str, Operation]] = deque(maxlen=PRESENCE_HISTORY)  # rev, author, op
        self._early: dict[str, PresenceUpdate] = {}  # updates made on revisions not reached yet
        self._held = False  # the cursor was set with an op in flight: shared after its ack

    # ------------------------------------------------------------ the own cursor

    def share(self, user: User | None, rev: int | None, in_flight: bool) -> list[Effect]:
        """Send the own cursor if the local text is the server's at ``rev``; else hold it for the ack."""
        if in_flight:
            self._held = True
            return []
        self._held = False
        return [Send(Presence(cursor=self.cursor, user=user, rev=rev))]

    def ready(self, user: User | None, rev: int | None, in_flight: bool) -> list[Effect]:
        """A connection became live: what was held for the old one is shared now, if anything."""
        self._held = False
        return [] if self.cursor is None else self.share(user, rev, in_flight)

    def acknowledged(self, user: User | None, rev: int | None) -> list[Effect]:
        """Nothing is in flight any more: share a cursor held for the ack."""
        return self.share(user, rev, in_flight=False) if self._held else []

    # ------------------------------------------------------------ the text moves

    def remember(self, rev: int, author: str, op: Operation) -> None:
        """``op`` of ``author`` was committed as ``rev``: kept to move later updates made before it."""
        self._history.append((rev, author, op))

    def forget_history(self) -> None:
        """A snapshot replaced the text: the revisions before it cannot move an update any more."""
        self._history.clear()

    def move(self, op: Operation, author: str | None) -> None:
        """Move every cursor through ``op`` of ``author`` (None: a snapshot's replacement)."""
        for client, peer in self.peers.items():
            self.peers[client] = Peer(transform_cursor(peer.cursor, op, client == author), peer.user)
        if self.cursor is not None:
            self.cursor = transform_cursor(self.cursor, op, author == self.client_id)

    # ------------------------------------------------------------ the others

    def receive(self, msg: PresenceUpdate, rev: int | None, to_local: ToLocal) -> list[Effect]:
        """Another client's update, for a replica at ``rev``; placed now or once ``rev`` reaches it."""
        if msg.client == self.client_id:
            return []
        if msg.cursor is None:
            self.peers.pop(msg.client, None)
            self._early.pop(msg.client, None)
            return [PresenceChanged(msg.client, None, msg.user)]
        if rev is None or msg.rev > rev:
            self._early[msg.client] = msg  # placed when the session reaches its revision
            return []
        return self._place(msg, to_local)

    def release(self, rev: int | None, to_local: ToLocal) -> list[Effect]:
        """Place the updates held for revisions the replica has reached now."""
        effects: list[Effect] = []
        for client, msg in list(self._early.items()):
            if rev is not None and msg.rev <= rev:
                del self._early[client]
                effects += self._place(msg, to_local)
        return effects

    def disconnected(self) -> None:
        """The connection is gone: who is here is learnt again from the next one."""
        self.peers.clear()
        self._early.clear()

    def _place(self, msg: PresenceUpdate, to_local: ToLocal) -> list[Effect]:
        assert msg.cursor is not None
        cursor = msg.cursor
        for rev, author, op in self._history:
            if rev > msg.rev:
                cursor = transform_cursor(cursor, op, author == msg.client)
        cursor = to_local(cursor)
        self.peers[msg.client] = Peer(cursor, msg.user)
        return [PresenceChanged(msg.client, cursor, msg.user)]
