"""The op log as the server sees it: an `OpStore` protocol, implemented in redis.py.

A committed revision is kept as its wire frame (`CommittedOp` encoded once), so a replay
sends stored bytes as they are. The commit is optimistic: it succeeds only when the
head is still at the expected revision, and it refuses an already-committed (client, seq).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from tandem.ot.integrity import genesis_hash
from tandem.ot.protocol import CommittedOp, Snapshot

committed_op_decoder = msgspec.json.Decoder(CommittedOp)
snapshot_decoder = msgspec.json.Decoder(Snapshot)
encode = msgspec.json.Encoder().encode


# Bytes of one page read from the log (`OpStore.ops` with ``max_bytes``): decoding it, and Redis
# answering it, stay within a few milliseconds, so a long read never holds anyone up.
PAGE_BYTES = 1 << 20


def text_of(message: object) -> str:
    """A wire message as the text of a WebSocket frame."""
    return encode(message).decode()


class StoreUnavailable(Exception):
    """The op log cannot be reached (connection refused or lost, no answer in time). Nothing is
    known to be decided: a commit may or may not have been applied, so its client resubmits."""


class HistoryGone(Exception):
    """The log no longer holds the revisions asked for (trimmed after a snapshot)."""


@dataclass(frozen=True, slots=True)
class Head:
    rev: int
    hash: str


@dataclass(frozen=True, slots=True)
class StoredOp:
    """A committed revision: the decoded op and its wire bytes."""

    op: CommittedOp
    frame: bytes

    @classmethod
    def of(cls, op: CommittedOp) -> StoredOp:
        return cls(op, encode(op))

    @classmethod
    def from_frame(cls, frame: bytes) -> StoredOp:
        return cls(committed_op_decoder.decode(frame), frame)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """The last committed op of one client on one document."""

    seq: int
    rev: int
    hash: str


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit attempt found.

    ``ok``: every record was committed. ``moved``: the head is not at the expected
    revision; ``head`` is where it is. ``duplicate``: record ``index`` has a (client, seq)
    at or below that client's last committed seq ``original``; nothing was committed.
    """

    status: Literal["ok", "moved", "duplicate"]
    head: Head | None = None
    index: int = -1
    original: ClientRecord | None = None


def genesis(doc: str) -> Snapshot:
    return Snapshot(rev=0, text="", hash=genesis_hash(doc))


# A listener gets (doc, message bytes): committed op frames, or presence from another process.
# Called as each message arrives, it must not block: it queues what it needs to.
Listener = Callable[[str, bytes], None]
# A message of the control channel, shared by every process on one store.
ControlListener = Callable[[bytes], Awaitable[None]]


class OpStore(Protocol):
    """The op log of every document and the notifications between processes that share it.

    Every method raises `StoreUnavailable` when the log cannot be reached, and nothing else
    of the backend below it.
    """

    async def ping(self) -> bool: ...

    async def head(self, doc: str) -> Head: ...

    async def commit(
        self, doc: str, expected_rev: int, records: Sequence[StoredOp], snapshot: Snapshot | None = None
    ) -> CommitResult: ...

    async def ops(self, doc: str, first: int, last: int, max_bytes: int | None = None) -> list[StoredOp]:
        """Committed revisions first..last (inclusive) that the log holds, in order. With
        ``max_bytes``, a page: it stops after the op whose frame reaches that many bytes in all."""
        ...

    async def first_logged_rev(self, doc: str) -> int | None: ...

    async def snapshot_at_or_before(self, doc: str, rev: int) -> Snapshot: ...

    async def text_at(self, doc: str, rev: int) -> Snapshot: ...

    async def client_record(self, doc: str, client: str) -> ClientRecord | None: ...

    async def claim_client(self, doc: str, client: str, subject: str | None) -> str | None:
        """The subject that owns ``client`` on ``doc``, after claiming it for ``subject`` when
        nobody owns it yet (``subject`` None: only look). Ownership is never given up: it keeps
        one token holder off another's exactly-once record."""
        ...

    async def publish(self, doc: str, message: bytes) -> None: ...

    def start_listening(self, listener: Listener) -> None:
        """Pass what other processes publish on subscribed documents to ``listener``."""
        ...

    def listen_control(self, listener: ControlListener) -> None:
        """Pass what any process publishes with `publish_control` (this one too) to ``listener``,
        from `start_listening` on."""
        ...

    async def publish_control(self, message: bytes) -> None:
        """Tell every process on this store (e.g. a revocation: server/embed.py)."""
        ...

    async def subscribe(self, doc: str) -> None: ...

    async def unsubscribe(self, doc: str) -> None: ...

    async def close(self) -> None: ...
