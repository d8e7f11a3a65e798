"""The pub/sub connection of one process: the channels of the documents it holds open, and the
control channel.

Every commit is published to each process holding its document, the committing one too, so
each op pays for one message received here. redis-py's PubSub spent ~60 us of Python on each
(a poll with a timeout under a lock, a dict per message, an await per layer); this connection
is the pipelined one of store/pipe.py with one change: hiredis parses the pushed messages and
`data_received` hands them to the listener at once, with no task and no await between.

Failure rules: a lost connection (or one that stops answering its PING for ``timeout``
seconds) is dropped and opened again after `RECONNECT_SECONDS`, with every channel subscribed
again. Messages published meanwhile are lost; documents repair that from the log (a gap seen
in the next message, the periodic head check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from tandem.server.store.pipe import RedisPipe, RespProtocol, pack

log = logging.getLogger("tandem.store")

RECONNECT_SECONDS = 0.5
# How often an idle subscription checks that Redis still answers it.
PING_SECONDS = 1.0

MessageHandler = Callable[[bytes, bytes], None]


class _Subscribed(RespProtocol):
    def __init__(self, timeout: float | None, on_message: MessageHandler) -> None:
        super().__init__(timeout)
        self.on_message = on_message

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            # A pushed message is ["message", channel, data]; anything else answers a command
            # (a subscribe's confirmation, a PING's ["pong", ""]).
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                self.replies += 1  # progress, for the watchdog
                try:
                    self.on_message(reply[1], reply[2])
                except Exception:
                    log.exception("the listener failed on a message of %r", reply[1])
            else:
                self.answer(reply)


class Subscriber:
    """Subscribes to channels and passes every message on them to ``on_message(channel, data)``,
    called from the connection's `data_received` (it must not block)."""

    def __init__(self, url: str, on_message: MessageHandler, timeout: float | None = None) -> None:
        self.channels: set[str] = set()
        self._pipe = RedisPipe(url, timeout=timeout, protocol=lambda t: _Subscribed(t, on_message))
        self._task: asyncio.Task[None] | None = None

    def start(self, *channels: str) -> None:
        """Subscribe to ``channels`` for good, and keep the connection open from now on."""
        self.channels.update(channels)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tandem-pubsub")

    async def subscribe(self, channel: str) -> None:
        """Subscribe, and return once Redis confirmed it (a message published after that reaches
        this process). Without a connection, return at once: the next connection subscribes."""
        self.channels.add(channel)
        await self._send("SUBSCRIBE", channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self._send("UNSUBSCRIBE", channel)

    async def _send(self, *command: str) -> None:
        protocol = self._pipe.live()
        if protocol is None:
            return  # the next connection subscribes to every channel in the set
        with contextlib.suppress(RedisError, OSError):
            await protocol.send(pack(command))

    async def _run(self) -> None:
        while True:
            try:
                protocol = await self._pipe.connected()
                # one SUBSCRIBE per channel: each is answered by one confirmation, in order
                await asyncio.gather(*(protocol.send(pack(["SUBSCRIBE", c])) for c in list(self.channels)))
                while True:
                    await asyncio.sleep(PING_SECONDS)
                    await protocol.send(pack(["PING"]))  # the watchdog drops a silent connection
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.warning("pub/sub connection lost (%s: %s); reconnecting", type(e).__name__, e)
            await self._pipe.close()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._pipe.close()
