"""uvicorn's WebSocket protocol (websockets-sansio), holding less for each open connection.

An idle connection of the stock protocol keeps the handshake's request and response (~5 KB of
header objects; the ASGI scope has its own copy of the request's headers), an asyncio.Queue
(four deques, ~3 KB) and an asyncio.Event (~0.8 KB). This one lets the handshake go once it is
answered, and has a receive queue and a writable flag that allocate only while a task waits on
them. What goes over the wire is uvicorn's, unchanged. `tandem serve` uses it when the installed
uvicorn has the protocol (`PROTOCOL`, else None: uvicorn's default then).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tandem.server.inbox import Inbox

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # an older uvicorn, or no websockets
    WebSocketsSansIOProtocol = None  # type: ignore[assignment, misc]


class ReceiveQueue:
    """The part of asyncio.Queue that uvicorn's protocol uses (put_nowait, get, empty), unbounded,
    for one reader at a time (the connection's app), as ASGI's receive is: an `Inbox` whose
    batches are given out one message at a time."""

    __slots__ = ("_inbox", "_next", "_taken")

    def __init__(self) -> None:
        self._inbox: Inbox[Any] = Inbox()
        self._taken: list[Any] = []  # the last batch taken, given out up to _next
        self._next = 0

    def put_nowait(self, item: Any) -> None:
        self._inbox.put(item)

    def empty(self) -> bool:
        return self._next == len(self._taken) and self._inbox.empty()

    async def get(self) -> Any:
        if self._next == len(self._taken):
            self._taken = await self._inbox.take_all()
            self._next = 0
        item = self._taken[self._next]
        self._taken[self._next] = None  # let it go now
        self._next += 1
        return item


class Flag:
    """asyncio.Event's set, clear, is_set and wait, with a future only while a task waits."""

    __slots__ = ("_set", "_waiter")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        # shielded: one waiter cancelled must not cancel the future the others wait on
        await asyncio.shield(self._waiter)
        return True


if WebSocketsSansIOProtocol is not None:

    class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = ReceiveQueue()  # type: ignore[assignment]
            self.writable = Flag(True)  # type: ignore[assignment]

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            # The request's headers are copied into the scope (or the request was refused), and
            # neither uvicorn nor websockets reads them again; but websockets' parser, a
            # generator, keeps the request as a local for as long as the connection lasts.
            self.__dict__.pop("request", None)
            event.headers.clear()

        def start_keepalive(self) -> None:
            # called once the response accepting the handshake is written: it is not needed again
            self.__dict__.pop("response", None)
            super().start_keepalive()

    PROTOCOL: type[asyncio.Protocol] | None = LeanWebSocketsProtocol
else:
    PROTOCOL = None
