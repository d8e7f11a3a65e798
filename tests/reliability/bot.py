"""One editing client for load and fault runs: the sans-IO `ClientSession` over a real WebSocket.

It reconnects after any failure, to the next server URL in its list (as a client behind a load
balancer lands on another process), resumes with its last revision, and resends a retryable op
after a pause. `cut()` drops the TCP connection without a close frame, wherever the bot is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection

from ot.client import ClientSession, Synchronized
from ot.effects import Acknowledged, Effect, Lost, Reconnect, Send, ServerError
from ot.operation import Delete, Insert, Operation, Retain
from ot.protocol import decode_server_frame, encoder

log = logging.getLogger("tandem.bot")
RETRY_PAUSE = 0.2


class Bot:
    def __init__(self, client_id: str, doc: str, urls: list[str], *,
                 on_ack: Callable[[int], None], on_lost: Callable[[list[int]], None]) -> None:
        self.session = ClientSession(client_id)
        self.doc = doc
        self.urls = urls
        self.on_ack = on_ack
        self.on_lost = on_lost
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._stopping = False

    @property
    def text(self) -> str | None:
        return self.session.text if self.session.rev is not None else None

    @property
    def rev(self) -> int | None:
        return self.session.rev

    def insert(self, at: int, content: str) -> int:
        """Insert locally and send; the seq of the op that will carry this edit."""
        return self._edit((Retain(at), Insert(content)) if at else (Insert(content),))

    def delete(self, at: int, length: int) -> int:
        return self._edit((Retain(at), Delete(length)) if at else (Delete(length),))

    def _edit(self, op: Operation) -> int:
        starts_op = isinstance(self.session.state, Synchronized)
        self._perform(self.session.edit(op))
        # A first edit goes out as its own op; later ones wait in the buffer for the next seq.
        return self.session.next_seq - 1 if starts_op else self.session.next_seq

    def cut(self) -> None:
        ws = self._ws
        if ws is not None and ws.transport is not None:
            with contextlib.suppress(OSError):
                ws.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            ws.transport.abort()

    def stop(self) -> None:
        self._stopping = True
        self.cut()

    async def run(self) -> None:
        attempt = 0
        while not self._stopping:
            url = f"{self.urls[attempt % len(self.urls)]}/ws/{self.doc}"
            attempt += 1
            try:
                async with websockets.connect(url, open_timeout=5, max_size=2**24, ping_interval=None) as ws:
                    self._ws = ws
                    self._outbox = asyncio.Queue()
                    writer = asyncio.create_task(self._write(ws))
                    try:
                        self._perform(self.session.connect())
                        async for frame in ws:
                            for message in decode_server_frame(frame):
                                self._perform(self.session.receive(message))
                    finally:
                        writer.cancel()
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass
            finally:
                self._ws = None
                self.session.disconnected()
            if not self._stopping:
                self.reconnects += 1
                await asyncio.sleep(RETRY_PAUSE if attempt % len(self.urls) == 0 else 0.01)

    async def _write(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.WebSocketException, OSError):
            while True:
                await ws.send((await self._outbox.get()).decode())

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(message):
                    self._outbox.put_nowait(encoder.encode(message))
                case Acknowledged(seq):
                    self.on_ack(seq)
                case ServerError(retryable=True):
                    asyncio.get_running_loop().call_later(RETRY_PAUSE, self._resubmit)
                case Lost(reason=reason):
                    log.warning("%s lost edits: %s", self.session.client_id, reason)
                    # The op in flight (seq next_seq - 1) is lost unless it is still pending;
                    # the buffer would have gone out as next_seq.
                    still = self.session.outstanding
                    self.on_lost([s for s in (self.session.next_seq - 1, self.session.next_seq)
                                  if still is None or s != still.seq])
                case Reconnect():
                    self.cut()

    def _resubmit(self) -> None:
        self._perform(self.session.resubmit())
