"""A Python client for custom editors and bots: `ot.client.ClientSession` over a WebSocket.

The session (sans-IO, in ot/) decides everything; this driver only moves bytes and time:
it performs the session's effects, reconnects with backoff, resumes from the last
revision held, and resends the op in flight (exactly-once makes that safe)::

    async with TandemClient("ws://127.0.0.1:8000/ws/notes") as doc:
        doc.insert(0, "hello ")
        await doc.synced()
        print(doc.text)

The `websockets` library is imported when a connection is opened, so importing this
module costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tandem.ot.client import ClientSession, Phase
from tandem.ot.cursor import Cursor
from tandem.ot.effects import (
    Acknowledged,
    CaughtUp,
    Diverged,
    Effect,
    Lost,
    PresenceChanged,
    Reconnect,
    Send,
    ServerError,
    TextChanged,
)
from tandem.ot.operation import Operation, delete_op, insert_op, replace_op
from tandem.ot.protocol import ErrorCode, User, decode_server_frame, encoder

log = logging.getLogger("tandem.client")

ChangeCallback = Callable[[Operation, str], None]
PresenceCallback = Callable[[str, Cursor | None, User | None], None]
LostCallback = Callable[[Lost], None]
AckCallback = Callable[[int, int], None]
# Called before every connection (the first and each reconnect) for the token to say hello with.
TokenProvider = Callable[[], str | None | Awaitable[str | None]]

CLOSE_TOKEN_EXPIRED = 4401  # the server closed at the token's expiry: reconnect with a fresh one
CLOSE_REVOKED = 4403  # the server re-checked this user's access and refused it: do not come back

RETRY_DELAY = 0.2  # before resending an op refused for a passing reason (rate_limited, unavailable)


class TokenUnavailable(Exception):
    """The token provider failed; its exception is the cause."""


class TandemClient:
    """One document through one server URL (``ws://host:port/ws/{doc}``).

    ``on_change(op, text)`` is called for every change that did not come from this
    client, with the op applied and the new text. ``on_lost`` is told about local edits
    the server refused for good (they are gone from the text after the reload).
    ``on_ack(seq, rev)`` is told when the local op ``seq`` is committed as revision ``rev``.
    ``token`` is a fixed token, or a function (plain or async) returning one, called before
    every connection: when the server closes at the token's expiry (4401), or refuses a token
    at hello, the client connects again with a fresh one. A close with 4403 (access revoked)
    ends the client: it does not reconnect, and `revoked` is True.
    """

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        *,
        token: str | TokenProvider | None = None,
        user: User | None = None,
        on_change: ChangeCallback | None = None,
        on_presence: PresenceCallback | None = None,
        on_lost: LostCallback | None = None,
        on_ack: AckCallback | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self._token_provider = token if callable(token) else None
        fixed = None if callable(token) else token
        self.session = ClientSession(client_id or "py-" + secrets.token_hex(6), token=fixed, user=user)
        self.on_change = on_change
        self.on_presence = on_presence
        self.on_lost = on_lost
        self.on_ack = on_ack
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.errors: list[ServerError] = []
        self.connections = 0
        self.close_code: int | None = None  # of the last connection, as the server sent it
        self._ws: Any = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._live = asyncio.Event()
        self._synced = asyncio.Event()
        self._synced.set()
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None

    # -- the document --------------------------------------------------------------------

    @property
    def revoked(self) -> bool:
        """The server closed with 4403: this user's access was revoked; the client stopped."""
        return self.close_code == CLOSE_REVOKED

    @property
    def text(self) -> str:
        return self.session.text

    @property
    def rev(self) -> int | None:
        return self.session.rev

    @property
    def client_id(self) -> str:
        return self.session.client_id

    def edit(self, op: Operation) -> None:
        """Apply an op made on the current text; it is sent when the connection allows."""
        self._perform(self.session.edit(op))

    def insert(self, position: int, content: str) -> None:
        self.edit(insert_op(position, content))

    def delete(self, position: int, length: int) -> None:
        self.edit(delete_op(position, length))

    def replace(self, position: int, length: int, content: str) -> None:
        self.edit(replace_op(position, length, content))

    def set_cursor(self, cursor: Cursor | None) -> None:
        self._perform(self.session.set_cursor(cursor))

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> TandemClient:
        """Open the connection and wait until the document is live."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"tandem-client:{self.client_id}")
        await self._wait(self._live, timeout, "the document to be live")
        return self

    async def synced(self, timeout: float = 10.0) -> None:
        """Wait until every local edit is committed."""
        await self._wait(self._synced, timeout, "every local edit to be committed")

    async def wait_for(self, predicate: Callable[[TandemClient], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds, re-checking after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s; text is {self.text[:80]!r}")
            await self._wait(self._changed, remaining, "a change")

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def __aenter__(self) -> TandemClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _wait(self, event: asyncio.Event, timeout: float, what: str) -> None:
        waiter = asyncio.ensure_future(event.wait())
        runner = self._runner
        pending = {waiter} if runner is None else {waiter, runner}
        done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if runner is not None and runner in done:
                raise ConnectionError(f"the client stopped: {runner.exception()!r}")
            raise TimeoutError(f"waited {timeout} s for {what}")

    # -- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        backoff = 0.05
        while not self._closing:
            try:
                if self._token_provider is not None:
                    self.session.token = await self._fresh_token()
                async with connect(self.url, max_size=None, open_timeout=10) as ws:
                    self._ws = ws
                    self.connections += 1
                    try:
                        await self._serve(ws)
                    finally:
                        self.close_code = ws.close_code
            except InvalidURI:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as e:
                log.info("%s: connection lost (%s)", self.client_id, e)
            except TokenUnavailable as e:
                log.warning("%s: no token to connect with: %s", self.client_id, e.__cause__)
            finally:
                if self._live.is_set():  # it reached the document: the next try starts quick again
                    backoff = 0.05
                self._ws = None
                self._live.clear()
                self._perform(self.session.disconnected())
                self._drain_outbox()
            if self._closing or not self.reconnect or self.revoked:
                if self.revoked:
                    log.warning("%s: access revoked; not reconnecting", self.client_id)
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _fresh_token(self) -> str | None:
        assert self._token_provider is not None
        try:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as e:  # the provider's failure is a failed connection: back off, retry
            raise TokenUnavailable() from e
        return token

    async def _serve(self, ws: Any) -> None:
        self._perform(self.session.connect())
        writer = asyncio.create_task(self._write(ws))
        try:
            async for frame in ws:
                for message in decode_server_frame(frame):
                    self._perform(self.session.receive(message))
                if self._reconnect_asked:
                    self._reconnect_asked = False
                    await ws.close()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    _reconnect_asked = False

    async def _write(self, ws: Any) -> None:
        while True:
            frame = await self._outbox.get()
            await ws.send(frame.decode())

    def _drain_outbox(self) -> None:
        # Messages meant for a closed connection: the session says hello and resends afresh.
        while not self._outbox.empty():
            self._outbox.get_nowait()

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(message):
                    if self._ws is not None:
                        self._outbox.put_nowait(encoder.encode(message))
                case TextChanged(op, remote):
                    if remote and self.on_change is not None:
                        self.on_change(op, self.session.text)
                case CaughtUp():
                    self._live.set()
                case Acknowledged(seq, rev):
                    if self.on_ack is not None:
                        self.on_ack(seq, rev)
                case ServerError() as error:
                    self.errors.append(error)
                    log.info("%s: server error %s: %s", self.client_id, error.code, error.message)
                    if (
                        error.code == ErrorCode.UNAUTHORIZED
                        and self._token_provider is not None
                        and self.session.phase is Phase.CONNECTING
                    ):
                        self._reconnect_asked = True  # a stale token: ask the provider again
                    if error.retryable and error.seq is not None:
                        asyncio.get_running_loop().call_later(RETRY_DELAY, self._resubmit)
                case Lost() as lost:
                    log.warning("%s: edits lost: %s", self.client_id, lost.reason)
                    if self.on_lost is not None:
                        self.on_lost(lost)
                case Diverged(rev, detail):
                    log.warning("%s: diverged at revision %d: %s", self.client_id, rev, detail)
                case Reconnect():
                    self._reconnect_asked = True
                case PresenceChanged(client, cursor, user):
                    if self.on_presence is not None:
                        self.on_presence(client, cursor, user)
        if self.session.outstanding is None and not self.session.buffer:
            self._synced.set()
        else:
            self._synced.clear()
        self._changed.set()

    def _resubmit(self) -> None:
        if self._ws is not None:
            self._perform(self.session.resubmit())
