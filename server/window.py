"""The recent committed ops an open document holds in memory, bounded in count and in bytes.

Rebasing, replaying a resume and moving cursors read the ops after some revision: from here
when it holds them, else from the log. The head op is always held; older ops leave when the
count or the bytes of their frames pass the bounds, so one document of huge ops cannot hold
more than ``max_bytes`` (plus its head op).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from tandem.server.store.base import StoredOp


class Window(Sequence[StoredOp]):
    def __init__(self, max_ops: int, max_bytes: int) -> None:
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self.bytes = 0
        self._ops: deque[StoredOp] = deque()

    def append(self, stored: StoredOp) -> None:
        self._ops.append(stored)
        self.bytes += len(stored.frame)
        while len(self._ops) > 1 and (len(self._ops) > self.max_ops or self.bytes > self.max_bytes):
            self.bytes -= len(self._ops.popleft().frame)

    def extend(self, ops: Iterable[StoredOp]) -> None:
        for stored in ops:
            self.append(stored)

    def clear(self) -> None:
        self._ops.clear()
        self.bytes = 0

    def after(self, base: int, last: int) -> list[StoredOp] | None:
        """Revisions ``base + 1`` to ``last`` when all are held, else None."""
        if base >= last:
            return []
        if not self._ops or self._ops[0].op.rev > base + 1:
            return None
        start = base + 1 - self._ops[0].op.rev
        return [self._ops[i] for i in range(start, start + last - base)]

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[StoredOp]:
        return iter(self._ops)

    @overload
    def __getitem__(self, index: int) -> StoredOp: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[StoredOp]: ...

    def __getitem__(self, index: int | slice) -> StoredOp | Sequence[StoredOp]:
        if isinstance(index, slice):
            return list(self._ops)[index]
        return self._ops[index]
