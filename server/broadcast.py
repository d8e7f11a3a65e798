"""One open document's committed op frames, in revision order, read by every receiver.

An op is appended once; each follower (a session) reads the frames after its own cursor when
it writes, so a commit costs the document O(1) plus a wake of the followers that were idle,
not a queue append per receiver. What a follower has not read yet stays here: the frames
before the lowest follower position go at each check (`CHECK_EVERY` appends, or a share of
the bytes bound), and a follower with more unsent messages or bytes than the bounds closes
itself then, so one slow receiver never makes the document hold more than the bounds.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# Appends between two checks of the followers' positions (each check costs one call per follower).
CHECK_EVERY = 64
# ... or this share of the bytes bound appended since the last check, whichever comes first.
CHECK_BYTES_SHARE = 16


@runtime_checkable
class Follower(Protocol):
    """A reader of a `Broadcast`: a WebSocket session."""

    def follow(self, log: Broadcast) -> None:
        """Read ``log`` from its head on; the follower adds itself (`Broadcast.add`)."""
        ...

    def ready(self) -> None:
        """An op was appended after this follower went idle (it asked with `Broadcast.idle`)."""
        ...

    def position(self) -> int | None:
        """The revision up to which the follower no longer needs frames, or None when it gave up
        following (it is closing: too far behind, or for another reason)."""
        ...

    def lost(self) -> None:
        """Frames it had not read were dropped to keep the bounds: it is too far behind."""
        ...


class Broadcast:
    """The committed op frames after the lowest follower position, up to ``head``.

    ``max_ops`` and ``max_bytes`` bound what one follower may have unsent (the frames here
    count toward it) and so what this holds: never more than those (the head op always stays).
    """

    # one per open document: no per-instance dict
    __slots__ = (
        "_base",
        "_check_bytes",
        "_check_ops",
        "_ends",
        "_frames",
        "_idle",
        "_skip",
        "_total",
        "followers",
        "head",
        "max_bytes",
        "max_ops",
    )

    def __init__(self, head: int, max_ops: int, max_bytes: int) -> None:
        self.head = head
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self.followers: set[Follower] = set()
        self._idle: list[Follower] = []  # followers to wake at the next append
        # Frames and running byte totals; entries before ``_skip`` are dropped (compacted later,
        # so dropping a few costs no copy of the rest).
        self._frames: list[str] = []
        self._ends: list[int] = []  # bytes appended up to and including each frame
        self._skip = 0
        self._base = 0  # bytes appended before the first frame held
        self._total = 0  # bytes appended, ever
        self._check_ops = CHECK_EVERY
        self._check_bytes = max(1, max_bytes // CHECK_BYTES_SHARE)

    @property
    def first(self) -> int:
        """The revision of the oldest frame held (``head + 1`` when none is)."""
        return self.head - (len(self._frames) - self._skip) + 1

    def __len__(self) -> int:
        return len(self._frames) - self._skip

    @property
    def bytes(self) -> int:
        return self._total - self._base

    # -- the document's side --------------------------------------------------------------

    def append(self, frame: str, size: int) -> None:
        """The op frame of revision ``head + 1`` (``size``: its bytes in UTF-8)."""
        self.head += 1
        self._frames.append(frame)
        self._total += size
        self._ends.append(self._total)
        if self._idle:
            idle, self._idle = self._idle, []
            for follower in idle:
                follower.ready()
        if len(self) > self._check_ops or self.bytes > self._check_bytes:
            self.check()

    def add(self, follower: Follower) -> None:
        self.followers.add(follower)

    def discard(self, follower: Follower) -> None:
        self.followers.discard(follower)

    def check(self) -> None:
        """Drop the frames every follower has read; a follower past the bounds closes itself."""
        low = self.head
        for follower in list(self.followers):
            position = follower.position()
            if position is None:
                self.followers.discard(follower)
            elif position < low:
                low = position
        self._drop(low - self.first + 1)
        if len(self) > self.max_ops or self.bytes > self.max_bytes:
            # Only a follower whose skipped own ops (answered by acks) made it look smaller than
            # what it pins gets here: the bounds hold for the document all the same.
            while len(self) > 1 and (len(self) > self.max_ops or self.bytes > self.max_bytes):
                self._drop(1)
            for follower in list(self.followers):
                position = follower.position()
                if position is not None and position < self.first - 1:
                    self.followers.discard(follower)
                    follower.lost()
        self._check_ops = min(len(self) + CHECK_EVERY, self.max_ops)
        self._check_bytes = min(self.bytes + max(1, self.max_bytes // CHECK_BYTES_SHARE), self.max_bytes)

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        self._skip += count
        self._base = self._ends[self._skip - 1]
        if self._skip * 2 >= len(self._frames):
            del self._frames[: self._skip]
            del self._ends[: self._skip]
            self._skip = 0

    # -- the followers' side --------------------------------------------------------------

    def idle(self, follower: Follower) -> None:
        """Call ``follower.ready()`` at the next append (once)."""
        self._idle.append(follower)

    def frames(self, after: int, last: int) -> list[str] | None:
        """The frames of revisions ``after + 1`` to ``last``, or None when they are no longer held."""
        if last <= after:
            return []
        first = self.first
        if after < first - 1 or last > self.head:
            return None
        start = self._skip + after + 1 - first
        return self._frames[start : start + last - after]

    def bytes_after(self, after: int, last: int | None = None) -> int | None:
        """The bytes of revisions ``after + 1`` to ``last`` (default: the head), or None when they
        are no longer held."""
        last = self.head if last is None else min(last, self.head)
        if last <= after:
            return 0
        end = self._end(last)
        start = self._end(after)
        return None if end is None or start is None else end - start

    def _end(self, rev: int) -> int | None:
        """The bytes appended up to and including revision ``rev``, if it is held (or just before)."""
        index = self._skip + rev - self.first
        if index == self._skip - 1:
            return self._base
        if self._skip <= index < len(self._ends):
            return self._ends[index]
        return None
