"""Presence on one open document: who is here and where their cursors are, kept at the head.

A cursor arrives at the revision its client's text was at; it is moved to the head through
the recent ops and relayed, so every receiver (which reaches the head before this message)
can place it as it is. The latest cursor of each client is held for those who join later;
a client's cursor goes when its last connection to the document leaves.

The caret rule is the one of the clients (ot/presence.py): an insert exactly at a cursor
pushes it only when the op is the cursor owner's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.protocol import PresenceUpdate
from tandem.server.store.base import StoredOp, encode, text_of


class Peer(Protocol):
    """A receiver of presence: a session."""

    client: str

    def deliver(self, text: str, rev: int | None = None) -> None: ...


class PresenceRelay:
    """The held cursors of one document; ``publish`` sends an update that arose here to the
    other processes (they relay it to theirs, with ``remote=True``)."""

    def __init__(self, doc: str, publish: Callable[[str, bytes], None]) -> None:
        self.doc = doc
        self.publish = publish
        self.cursors: dict[str, PresenceUpdate] = {}

    def update(
        self,
        update: PresenceUpdate,
        sender: Peer | None,
        *,
        remote: bool,
        head: int,
        window: Sequence[StoredOp],
        peers: Collection[Peer],
    ) -> None:
        """Hold and relay ``update``; the caller has checked it is not past the head."""
        if not remote and update.cursor is not None:
            # a cursor older than the window cannot be moved to the head and is dropped (the
            # next one will do)
            moved = at_head(update, head, window)
            if moved is None:
                return
            update = moved
        if update.cursor is None:
            self.cursors.pop(update.client, None)
        else:
            self.cursors[update.client] = update
        self._send(update, sender, peers, publish=not remote)

    def left(self, client: str, head: int, peers: Collection[Peer]) -> None:
        """``client``'s connection left: its cursor goes when no other connection of it stays."""
        if client in self.cursors and not any(p.client == client for p in peers):
            del self.cursors[client]
            gone = PresenceUpdate(client=client, rev=head, cursor=None, user=None)
            self._send(gone, None, peers, publish=True)

    def joined(self, peer: Peer, head: int, window: Sequence[StoredOp]) -> None:
        """Send a joining ``peer`` (at the head) every other client's cursor."""
        for update in self.cursors.values():
            moved = at_head(update, head, window)
            if moved is not None and update.client != peer.client:
                peer.deliver(text_of(moved))

    def _send(
        self, update: PresenceUpdate, sender: Peer | None, peers: Collection[Peer], *, publish: bool
    ) -> None:
        """Relay to the local peers and, when it arose here, to the other processes: encoded once."""
        frame = encode(update)
        if publish:
            self.publish(self.doc, frame)
        text = frame.decode()
        for peer in peers:
            if peer is not sender and peer.client != update.client:
                peer.deliver(text)


def at_head(update: PresenceUpdate, head: int, window: Sequence[StoredOp]) -> PresenceUpdate | None:
    """``update`` moved to revision ``head`` through ``window`` (the recent ops, ending at the
    head), or None when the window no longer holds its revision."""
    if update.cursor is None or update.rev > head:
        return None
    if not window or window[0].op.rev > update.rev + 1:
        return None if update.rev < head else update
    cursor: Cursor = update.cursor
    for stored in itertools.islice(window, update.rev + 1 - window[0].op.rev, None):
        cursor = transform_cursor(cursor, stored.op.ops, own=stored.op.client == update.client)
    return PresenceUpdate(client=update.client, rev=head, cursor=cursor, user=update.user)
