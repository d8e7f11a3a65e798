"""A lean pipelined Redis connection for the commit script, the one command every op pays for.

redis-py's asyncio client spends 70-110 us of Python per command (connection pool, retry and
timeout wrappers, one write per command); measured here, this connection spends 10-25 us: every
command queued in one event-loop turn goes out in one write, replies are parsed by hiredis and
matched to callers in order (Redis answers a connection's commands in order). Commits of many
documents therefore share one round trip. See docs/performance.md.

Failure rules: a lost connection fails every command in flight with redis' ConnectionError
(the document answers `unavailable`, the client resubmits, exactly-once makes that safe) and the
next call connects again. A command is sent a second time only when it never left this process:
one lost in flight may have run, and its outcome is learned from the log, not by running it again.
A Redis that stops answering (a stopped process, a network blackhole) fails a command after
``timeout`` seconds with redis' TimeoutError, and the connection is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import BusyLoadingError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int


def pack(args: Sequence[Arg]) -> bytes:
    """One command in the Redis protocol (RESP2)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        parts += (b"$%d\r\n" % len(a), a, b"\r\n")
    return b"".join(parts)


class NotSent(RedisConnectionError):
    """The connection was found dead before the command was written: sending it again is safe."""


class RespProtocol(asyncio.Protocol):
    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.replies = 0  # replies read so far: the watchdog's measure of progress
        self.watchdog: asyncio.TimerHandle | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.outgoing: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self._replies_at_watch = 0
        self.flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.answer(reply)

    def answer(self, reply: Any) -> None:
        """Hand ``reply`` to the oldest command waiting (Redis answers in order)."""
        self.replies += 1
        future = self.waiting.popleft()
        if future.done():
            return
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            error: Exception = ResponseError(text)
            if text.startswith("NOSCRIPT"):
                error = NoScriptError(text)
            elif text.startswith("LOADING"):  # restarting from its append-only file: unavailable
                error = BusyLoadingError(text)
            future.set_exception(error)
        else:
            future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def _fail_all(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        transport, self.transport = self.transport, None
        sent = len(self.waiting) - len(self.outgoing)  # the rest are queued for the next write
        self.outgoing.clear()
        for i, future in enumerate(self.waiting):
            if not future.done():
                future.set_exception(error if i < sent else NotSent(f"not sent: {error}"))
        self.waiting.clear()
        if transport is not None:
            transport.abort()

    def _watch(self) -> None:
        """Commands wait and no reply came for ``timeout`` seconds: Redis is not answering.

        One timer per connection, not one per command: the commit path stays as cheap as it was.
        Replies are matched to commands by order, so the connection is dropped as a whole.
        """
        self.watchdog = None
        if not self.waiting or self.timeout is None:
            return
        if self.replies == self._replies_at_watch:
            self._fail_all(RedisTimeoutError(f"Redis did not answer within {self.timeout:g} s"))
            return
        self._arm()

    def _arm(self) -> None:
        assert self.timeout is not None
        self._replies_at_watch = self.replies
        self.watchdog = asyncio.get_running_loop().call_later(self.timeout, self._watch)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.lost is not None or self.transport is None:
            future.set_exception(NotSent(f"not sent: {self.lost or 'Redis connection is closed'}"))
            return future
        self.waiting.append(future)
        self.outgoing.append(command)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            loop.call_soon(self.flush)  # after everything else runnable in this turn has queued
        return future

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is not None and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
            if self.watchdog is None and self.timeout is not None:
                self._arm()
        self.outgoing.clear()


class RedisPipe:
    """One pipelined connection; `call` and `evalsha` may be awaited from many tasks at once."""

    def __init__(
        self,
        url: str,
        connect_timeout: float = 5.0,
        timeout: float | None = None,
        protocol: Callable[[float | None], RespProtocol] = RespProtocol,
    ) -> None:
        self.options: dict[str, Any] = dict(parse_url(url))
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._make_protocol = protocol
        self._protocol: RespProtocol | None = None
        self._connecting = asyncio.Lock()

    @staticmethod
    def supports(url: str) -> bool:
        """Plain TCP and unix sockets; TLS stays with redis-py."""
        return url.startswith(("redis://", "unix://"))

    def live(self) -> RespProtocol | None:
        """The connection when it is open, else None (nothing is connected)."""
        protocol = self._protocol
        return protocol if protocol is not None and protocol.lost is None else None

    async def connected(self) -> RespProtocol:
        """The live connection, connecting (and authenticating) first when there is none."""
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    if "path" in self.options:
                        _, protocol = await loop.create_unix_connection(
                            lambda: self._make_protocol(self.timeout), self.options["path"]
                        )
                    else:
                        host, port = self.options.get("host", "localhost"), self.options.get("port", 6379)
                        _, protocol = await loop.create_connection(
                            lambda: self._make_protocol(self.timeout), host, port
                        )
            except (OSError, TimeoutError) as e:
                raise RedisConnectionError(f"cannot connect to Redis: {e}") from e
            hello: list[asyncio.Future[Any]] = []
            if self.options.get("password"):
                user = [self.options["username"]] if self.options.get("username") else []
                hello.append(protocol.send(pack(["AUTH", *user, self.options["password"]])))
            if int(self.options.get("db", 0) or 0):
                hello.append(protocol.send(pack(["SELECT", int(self.options["db"])])))
            for reply in hello:
                await reply
            self._protocol = protocol
            return protocol

    async def call(self, *args: Arg) -> Any:
        protocol = await self.connected()
        return await protocol.send(pack(args))

    async def evalsha(self, sha: str, script: str, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """EVALSHA, falling back to EVAL when Redis lost its script cache (e.g. it restarted).

        A connection found dead before the call was written is reconnected and the call sent
        once more. A call lost after it was written is not sent again: the script may have run,
        and a second run would answer ``moved`` or ``duplicate`` for the submitter's own op. The
        caller answers `unavailable` and the outcome is read back from the log.
        """
        for attempt in (1, 2):
            try:
                try:
                    return await self.call("EVALSHA", sha, len(keys), *keys, *args)
                except NoScriptError:
                    return await self.call("EVAL", script, len(keys), *keys, *args)
            except NotSent:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
