"""A document's queue of events: many producers, one consumer that takes everything at once.

An asyncio.Queue would do, but it holds three deques and an Event per document (~3 KB of the
memory an idle open document costs); the document task only ever takes all that is queued, so
a list handed over whole serves (an empty deque is ~700 bytes more than an empty list).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def take_all(self) -> list[T]:
        """Everything queued, in order; waits while nothing is. One consumer at a time."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("another task is already waiting on this inbox")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.drain()

    def drain(self) -> list[T]:
        """Everything queued, in order, without waiting."""
        items, self._items = self._items, []
        return items
