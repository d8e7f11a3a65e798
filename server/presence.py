"""Presence on one open document: who is here and where their cursors are, kept at the head.

A cursor arrives at the revision its client's text was at; it is checked to lie inside the
document at that revision, moved to the head through the recent ops and relayed, so every
receiver (which reaches the head before this message) can place it as it is. The latest
cursor of each client is held for those who join later; a client's cursor goes when its
last connection to the document leaves.

Moving a cursor costs a step per component of the ops it passes through, and a read-only
client may send one at any old revision: a document spends at most ``budget`` components a
second on moving cursors (one cursor at most that many), and a cursor that would cost more
is dropped like one older than the window (the sender's next cursor replaces it).

Each process re-publishes the cursors of its own clients every refresh; a cursor learnt
from another process that is not refreshed within the TTL (its process died) goes as on a
clean leave.

The caret rule is the one of the clients (ot/presence.py): an insert exactly at a cursor
pushes it only when the op is the cursor owner's own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Sequence
from typing import ClassVar, Protocol

from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.operation import length_delta
from tandem.ot.protocol import PresenceUpdate
from tandem.server.store.base import StoredOp, encode, text_of


class Peer(Protocol):
    """A receiver of presence: a session."""

    client: str

    def deliver(self, text: str, rev: int | None = None) -> None: ...


class Budget:
    """Components of ops a document may spend moving cursors: ``rate`` a second, as a burst too."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.tokens = -1.0  # full at first use, when the rate is known
        self.stamp = clock()

    def take(self, cost: int, rate: int) -> bool:
        now = self.clock()
        self.tokens = rate if self.tokens < 0 else min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if cost > self.tokens:
            return False
        self.tokens -= cost
        return True


class PresenceRelay:
    """The held cursors of one document; ``publish`` sends an update that arose here to the
    other processes (they relay it to theirs, with ``remote=True``)."""

    # Put to a document by the hub every refresh (no client has an empty id): `refresh` it.
    REFRESH: ClassVar[PresenceUpdate] = PresenceUpdate(client="", rev=0, cursor=None)

    def __init__(self, doc: str, publish: Callable[[str, bytes], None]) -> None:
        self.doc = doc
        self.publish = publish
        self.cursors: dict[str, PresenceUpdate] = {}
        # clients whose held cursor came from another process: when it was last heard of
        self.seen: dict[str, float] = {}
        self.budget = Budget()

    def update(
        self,
        update: PresenceUpdate,
        sender: Peer | None,
        *,
        remote: bool,
        head: int,
        window: Sequence[StoredOp],
        peers: Collection[Peer],
        length: int,
        budget: int,
    ) -> str | None:
        """Hold and relay ``update``; the caller has checked it is not past the head. ``length``
        is the text's length at ``head``, ``budget`` the components one move may cost. Returns
        what is wrong with an update that must be refused (a cursor outside the text), else None."""
        if remote:
            self._remote(update, peers)
            return None
        if update.cursor is not None:
            placed = place(update, head, window, length, budget, self.budget)
            if isinstance(placed, str) or placed is None:
                return placed  # None: too old or too costly to move, dropped; the next one will do
            update = placed
        self.seen.pop(update.client, None)
        if update.cursor is None:
            self.cursors.pop(update.client, None)
        else:
            self.cursors[update.client] = update
        self._send(update, sender, peers, publish=True)
        return None

    def _remote(self, update: PresenceUpdate, peers: Collection[Peer]) -> None:
        if update.cursor is None:
            self.seen.pop(update.client, None)
            if self.cursors.pop(update.client, None) is None:
                return
        else:
            self.seen[update.client] = time.monotonic()
            if self.cursors.get(update.client) == update:
                return  # a refresh of what is held: relayed already
            self.cursors[update.client] = update
        self._send(update, None, peers, publish=False)

    def left(self, client: str, head: int, peers: Collection[Peer]) -> None:
        """``client``'s connection left: its cursor goes when no other connection of it stays
        (here, or elsewhere: a cursor last heard of from another process stays)."""
        if client in self.cursors and client not in self.seen and not any(p.client == client for p in peers):
            del self.cursors[client]
            gone = PresenceUpdate(client=client, rev=head, cursor=None, user=None)
            self._send(gone, None, peers, publish=True)

    def joined(self, peer: Peer, head: int, window: Sequence[StoredOp], budget: int) -> None:
        """Send a joining ``peer`` (at the head) every other client's cursor that can be moved
        there within the budget (one left out shows at its owner's next move or refresh)."""
        for update in list(self.cursors.values()):
            if update.client == peer.client:
                continue
            moved = place(update, head, window, -1, budget, self.budget)
            if isinstance(moved, PresenceUpdate):
                peer.deliver(text_of(moved))

    def refresh(self, head: int, peers: Collection[Peer], ttl: float) -> None:
        """Re-publish the cursors of this process's clients, as they are held (the other
        processes hold the same, so it only renews them); drop the cursors of other processes
        not heard of within ``ttl`` seconds, as on a leave."""
        now = time.monotonic()
        for client, update in self.cursors.items():
            if client not in self.seen:
                self.publish(self.doc, encode(update))
        for client, seen in list(self.seen.items()):
            if now - seen > ttl and not any(p.client == client for p in peers):
                del self.seen[client]
                del self.cursors[client]
                gone = PresenceUpdate(client=client, rev=head, cursor=None, user=None)
                self._send(gone, None, peers, publish=False)

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


def place(
    update: PresenceUpdate,
    head: int,
    window: Sequence[StoredOp],
    length: int,
    limit: int,
    budget: Budget | None = None,
) -> PresenceUpdate | str | None:
    """``update`` checked against the text at its revision (``length`` is the text's at ``head``;
    -1 skips the check) and moved to ``head`` through ``window`` (the recent ops, ending at the
    head). A str says why the cursor is refused; None: the window no longer holds its revision,
    or the ops after it have more than ``limit`` components (or more than ``budget`` has left)."""
    cursor = update.cursor
    if cursor is None or update.rev > head:
        return None
    if update.rev == head:
        later: Sequence[StoredOp] = ()
    elif not window or window[0].op.rev > update.rev + 1:
        return None
    else:
        later = list(itertools.islice(window, update.rev + 1 - window[0].op.rev, None))
        cost = sum(len(stored.op.ops) for stored in later)  # a step per component, at most
        if cost > limit or (budget is not None and not budget.take(cost, limit)):
            return None
    if length >= 0:
        at_rev = length - sum(length_delta(stored.op.ops) for stored in later)
        if max(cursor.anchor, cursor.head) > at_rev:
            return (
                f"presence cursor {{anchor: {cursor.anchor}, head: {cursor.head}}} is outside the "
                f"document, {at_rev} code points long at revision {update.rev}"
            )
    moved: Cursor = cursor
    for stored in later:
        moved = transform_cursor(moved, stored.op.ops, own=stored.op.client == update.client)
    return PresenceUpdate(client=update.client, rev=head, cursor=moved, user=update.user)
