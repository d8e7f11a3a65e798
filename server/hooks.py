"""Change hooks: committed ops delivered to the host, at least once, in revision order.

A hook is a name and an async ``deliver(events)``: an in-process callback, or the HTTP
webhook of server/webhook.py. Each hook reads every document's op log (the stream
``tandem:{doc}:log``) through a consumer group of its own name, so what it has delivered is
kept in Redis, next to the log, and not in this process:

- a batch is acknowledged (XACK) only after ``deliver`` returned; a crash before that leaves
  it pending, and the next runner to take the document delivers it again, first;
- one runner at a time delivers a hook on a document (a lease key), so events stay in
  revision order across processes;
- documents are found by pub/sub (every commit publishes on ``tandem:{doc}:events``) and by a
  periodic SCAN of every log, which also finds what was committed while no runner listened;
  a document with nothing new costs nothing between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from tandem.ot.operation import Operation
from tandem.server.settings import Settings
from tandem.server.store.base import StoreUnavailable, committed_op_decoder
from tandem.server.store.redis import RedisOpStore, doc_of_channel

log = logging.getLogger("tandem.hooks")

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIRST_BACKOFF = 0.5
# Lease on a document, beyond the hook's own timeout: a runner that died frees it this soon.
_LEASE_SPARE_SECONDS = 5.0


class ChangeEvent(msgspec.Struct, frozen=True):
    """One committed revision of one document, as a hook receives it.

    ``gap``: revisions right before this one that the log no longer held when the hook came to
    read them (trimmed by ``--log-retention``); 0 when nothing was missed. ``time``: when it was
    committed, in milliseconds since the epoch (the server's clock); None for ops committed
    before servers recorded it.
    """

    doc: str
    rev: int
    client: str
    seq: int
    ops: Operation
    hash: str
    gap: int = 0
    time: int | None = None


Deliver = Callable[[list[ChangeEvent]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Hook:
    """``deliver`` gets the next events of one document, in revision order; returning
    acknowledges them, raising (or taking longer than ``timeout`` seconds) has them retried.

    ``name`` (1-64 of ``A-Z a-z 0-9 . _ -``) is the hook's consumer group: keep it across
    restarts to resume where it left off; a new name starts over (``hook_start``)."""

    name: str
    deliver: Deliver
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a hook name is 1-64 of A-Z a-z 0-9 . _ -, got {self.name!r}")
        if self.timeout <= 0:
            raise ValueError(f"a hook's timeout must be positive, got {self.timeout}")


def hooks_from_settings(settings: Settings) -> list[Hook]:
    """The webhook the settings ask for (``webhook_url``), if any."""
    if not settings.webhook_url:
        return []
    from tandem.server.webhook import webhook  # webhook.py builds on this module

    assert settings.webhook_secret  # Settings refuses a URL without one
    return [
        webhook(
            settings.webhook_name,
            settings.webhook_url,
            settings.webhook_secret,
            timeout=settings.webhook_timeout,
        )
    ]


@contextlib.asynccontextmanager
async def run_hooks(
    store: RedisOpStore, settings: Settings, hooks: Sequence[Hook] = ()
) -> AsyncIterator[HookRunner | None]:
    """Run ``hooks`` and the settings' webhook while inside; nothing at all when there are none."""
    every = [*hooks, *hooks_from_settings(settings)]
    if not every:
        yield None
        return
    runner = HookRunner(store, every, settings)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


Key = tuple[str, str]  # (hook name, document)


class HookRunner:
    """Delivers ``hooks`` for every document of ``store`` until `stop`.

    Any number of runners (one per server process) may run on one Redis: they share the work
    per document. The batch, concurrency, retry and scan settings are ``settings``' ``hook_*``.
    """

    def __init__(self, store: RedisOpStore, hooks: Sequence[Hook], settings: Settings | None = None) -> None:
        settings = settings or Settings()
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must differ: {names}")
        self.store = store
        self.hooks = {h.name: h for h in hooks}
        self.settings = settings
        self.holder = secrets.token_hex(8)
        self.stats: dict[str, int] = {"delivered": 0, "deliveries": 0, "failures": 0, "gaps": 0, "scans": 0}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._retry: dict[Key, asyncio.TimerHandle] = {}
        self._joined: set[Key] = set()
        # the first revision a notification announced, for hook_start "new"
        self._heard: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._scan_now = asyncio.Event()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen(), name="tandem-hooks-listen"))
        self._tasks.append(asyncio.create_task(self._scan(), name="tandem-hooks-scan"))
        for i in range(self.settings.hook_concurrency):
            self._tasks.append(asyncio.create_task(self._work(), name=f"tandem-hooks-{i}"))

    async def stop(self) -> None:
        """Stop delivering; a delivery cut short stays pending and is delivered again later."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for handle in self._retry.values():
            handle.cancel()
        # give back what this runner held (backing off, or cut short), so another runner goes on now
        held = set(self._retry) | self._running
        self._retry.clear()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await asyncio.gather(
                    *(self.store.hook_release(doc, hook, self.holder) for hook, doc in held),
                    return_exceptions=True,
                )

    def notify(self, doc: str) -> None:
        """Look at ``doc`` now (a commit was heard of): every hook delivers what is new there."""
        for hook in self.hooks:
            self._schedule((hook, doc))

    # -- scheduling -----------------------------------------------------------------------

    def _schedule(self, key: Key) -> None:
        if key in self._retry:
            return  # backing off: the timer brings it back
        if key in self._running:
            self._again.add(key)  # what was just committed may have come after its last read
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _retry_later(self, key: Key, delay: float) -> None:
        def due() -> None:
            self._retry.pop(key, None)
            self._schedule(key)

        self._retry[key] = asyncio.get_running_loop().call_later(delay, due)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._running.add(key)
            try:
                more = await self._drain(*key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                more = False
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self.stats["failures"] += 1
                delay = min(self.settings.hook_retry_max_seconds, _FIRST_BACKOFF * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.0)  # runners that failed together do not retry together
                log.warning(
                    "hook %s on %r failed (%s: %s); retry %d in %.1f s",
                    key[0],
                    key[1],
                    type(e).__name__,
                    e,
                    failures,
                    delay,
                )
                # keep the lease through the wait, so other runners do not retry sooner
                with contextlib.suppress(Exception):
                    await self.store.hook_lease(key[1], key[0], self.holder, self._lease_ms(key[0], delay))
                self._retry_later(key, delay)
            finally:
                self._running.discard(key)
            if more or key in self._again:
                self._again.discard(key)
                self._schedule(key)

    # -- one hook on one document -----------------------------------------------------------

    def _lease_ms(self, hook: str, extra: float = 0.0) -> int:
        return int((self.hooks[hook].timeout + _LEASE_SPARE_SECONDS + extra) * 1000)

    async def _drain(self, hook_name: str, doc: str) -> bool:
        """Deliver what ``hook_name`` has not acknowledged on ``doc``; True: look again."""
        hook, store, key = self.hooks[hook_name], self.store, (hook_name, doc)
        if key not in self._joined:
            after: int | None = 0
            if self.settings.hook_start == "new":
                heard = self._heard.get(doc)
                after = None if heard is None else heard - 1
            await store.hook_join(doc, hook_name, after)
            if len(self._joined) >= 100_000:
                self._joined.clear()  # a bound: joining again only finds the group there
            self._joined.add(key)
        if not await store.hook_lease(doc, hook_name, self.holder, self._lease_ms(hook_name)):
            return False  # another runner delivers it; it looks again after giving the lease back
        released = False
        try:
            await self._deliver_all(hook, doc)
            self._failures.pop(key, None)
            await store.hook_release(doc, hook_name, self.holder)
            released = True
            # a commit whose notification met our lease elsewhere came before this release
            position = await store.hook_position(doc, hook_name)
            return position is not None and (position[2] > position[0] or position[1] > 0)
        except asyncio.CancelledError:
            if not released:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await store.hook_release(doc, hook_name, self.holder)
            raise

    async def _deliver_all(self, hook: Hook, doc: str) -> None:
        store, settings = self.store, self.settings
        expected: int | None = None  # the revision the next event should be
        gap = 0
        for pending in (True, False):
            if not pending and expected is None:
                position = await store.hook_position(doc, hook.name)
                expected = None if position is None else position[0] + 1
            while True:
                if not await store.hook_lease(doc, hook.name, self.holder, self._lease_ms(hook.name)):
                    raise StoreUnavailable(f"lost the lease on {doc!r} to another runner")
                entries = await store.hook_read(doc, hook.name, settings.hook_batch, pending)
                if not entries:
                    break
                # split what was read into deliveries of at most hook_batch_bytes
                events: list[ChangeEvent] = []
                acks: list[int] = []
                size = 0
                for rev, frame in entries:
                    acks.append(rev)
                    if frame is None:  # trimmed before it was acknowledged
                        gap += 1
                        continue
                    if expected is not None and rev > expected:
                        gap += rev - expected
                    expected = rev + 1
                    op = committed_op_decoder.decode(frame)
                    if gap:
                        self.stats["gaps"] += 1
                        log.warning(
                            "hook %s: revisions %d..%d of %r were trimmed unread",
                            hook.name,
                            rev - gap,
                            rev - 1,
                            doc,
                        )
                    events.append(ChangeEvent(doc, op.rev, op.client, op.seq, op.ops, op.hash, gap, op.time))
                    gap = 0
                    size += len(frame)
                    if size >= settings.hook_batch_bytes:
                        await self._deliver(hook, doc, events, acks)
                        events, acks, size = [], [], 0
                await self._deliver(hook, doc, events, acks)
        if gap:
            log.warning("hook %s: %d revisions of %r were trimmed unread", hook.name, gap, doc)

    async def _deliver(self, hook: Hook, doc: str, events: list[ChangeEvent], acks: list[int]) -> None:
        if events:
            async with asyncio.timeout(hook.timeout):
                await hook.deliver(events)
            self.stats["deliveries"] += 1
            self.stats["delivered"] += len(events)
        await self.store.hook_ack(doc, hook.name, acks)

    # -- finding documents ------------------------------------------------------------------

    async def _listen(self) -> None:
        """Every commit's notification, by a pattern subscription (on a cluster PUBLISH reaches
        every node, so one connection hears all). A lost one costs latency: the scan finds it."""
        redis = self.store.redis
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe("tandem:*:events")
                self._scan_now.set()  # what was committed while not subscribed
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message["type"] != "pmessage":
                        continue
                    data: bytes = message["data"]
                    if not data.startswith(b"{"):
                        continue  # presence: "<process id> <frame>"
                    doc = doc_of_channel(message["channel"])
                    if self.settings.hook_start == "new" and doc not in self._heard:
                        first = committed_op_decoder.decode(data.split(b"\n", 1)[0]).rev
                        if len(self._heard) >= 100_000:
                            self._heard.clear()  # a bound; only "new" on unseen documents uses it
                        self._heard[doc] = first
                    self.notify(doc)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("hooks: pub/sub lost (%s: %s); reconnecting", type(e).__name__, e)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _scan(self) -> None:
        """Every document's log, now and every ``hook_scan_seconds``: schedule each hook that
        has something undelivered there (or no group yet)."""
        while True:
            try:
                async for doc in self.store.hook_docs():
                    for hook in self.hooks:
                        key = (hook, doc)
                        if key in self._queued or key in self._running or key in self._retry:
                            continue
                        position = await self.store.hook_position(doc, hook)
                        if position is None or position[2] > position[0] or position[1] > 0:
                            self._schedule(key)
                    # the queue is bounded by the work in it: let the workers keep up with the scan
                    while self._queue.qsize() > 4 * self.settings.hook_concurrency:
                        await asyncio.sleep(0.05)
                self.stats["scans"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("hooks: scan failed (%s: %s)", type(e).__name__, e)
            self._scan_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.hook_scan_seconds):
                    await self._scan_now.wait()
