"""One open document in this process: cached head, recent ops, local subscribers.

Every change to the document's state happens in its single task, which takes events from
one queue: submissions (grouped into one commit), ops learned from other processes,
joins, fetches, presence and periodic head checks. No locks are needed inside a process;
between processes the commit in Redis is the arbiter.

Each committed op is encoded once and the same text goes to every receiver; the
submitter gets an `ack` at the same point in the revision order. That holds for an op
learned from the log too (committed by another process, or by a call whose reply was lost):
a submission of it still waiting here is answered by that revision's ack, never by the op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tandem.ot.cursor import Cursor, transform_cursor
from tandem.ot.errors import InvalidOperation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import Operation, apply
from tandem.ot.protocol import Ack, Error, ErrorCode, Fetch, PresenceUpdate, Ready, Snapshot
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import HistoryGone, OpStore, StoredOp, encode
from tandem.server.submit import BatchCommit, HeadBehind, RetriesExhausted, Submission, split_repeats

log = logging.getLogger("tandem.document")

# Failures that mean the op log cannot be reached: nothing was decided, the client resubmits later.
UNAVAILABLE = (OSError, RedisConnectionError, RedisTimeoutError)

SHUTTING_DOWN = "the server is shutting down; resubmit (an op already committed is acknowledged)"

WINDOW = 2048
# Ops committed in one script call at most: a bigger group would hold Redis up for others.
MAX_GROUP = 256


class Subscriber(Protocol):
    """A receiver of one document's messages: a WebSocket session."""

    client: str
    rev: int

    def deliver(self, text: str) -> None: ...

    def unavailable(self) -> None: ...


@dataclass(slots=True)
class Join:
    sub: Subscriber
    rev: int | None
    done: asyncio.Future[Error | None]


@dataclass(slots=True)
class Leave:
    sub: Subscriber


@dataclass(slots=True)
class FetchRequest:
    sub: Subscriber
    fetch: Fetch


@dataclass(slots=True)
class PresenceIn:
    sub: Subscriber | None
    update: PresenceUpdate
    remote: bool


@dataclass(slots=True)
class Remote:
    frame: bytes


@dataclass(slots=True)
class HeadCheck:
    pass


Event = Submission | Join | Leave | FetchRequest | PresenceIn | Remote | HeadCheck


def text_of(message: object) -> str:
    return encode(message).decode()


class Document:
    def __init__(self, name: str, store: OpStore, settings: Settings, metrics: Metrics,
                 publish_presence: Callable[[str, bytes], None]) -> None:
        self.name = name
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.publish_presence = publish_presence
        self.rev = 0
        self.hash = ""
        self.text = ""
        self.window: deque[StoredOp] = deque(maxlen=WINDOW)
        self.subscribers: set[Subscriber] = set()
        self.presence: dict[str, PresenceUpdate] = {}
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.users = 0  # sessions and requests holding the document open
        # Submissions not answered yet, by (client, seq): the log may answer them first.
        self.waiting: dict[tuple[str, int], list[Submission]] = {}

    # -- loading and the task ------------------------------------------------------------

    async def load(self) -> None:
        head = await self.store.head(self.name)
        snap = await self.store.snapshot_at_or_before(self.name, head.rev)
        ops = await self.store.ops(self.name, snap.rev + 1, head.rev)
        if len(ops) != head.rev - snap.rev:
            raise HistoryGone(f"{self.name}: log holds {len(ops)} of revisions {snap.rev + 1}..{head.rev}")
        text = snap.text
        for stored in ops:
            text = apply(text, stored.op.ops)
        self.rev, self.hash, self.text = head.rev, head.hash, text
        self.window.extend(ops)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"doc:{self.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        # Nobody is left waiting: an HTTP submit gets 503, a hello or a fetch its error (_run
        # answers those it had taken from the queue). A submission cut off in its commit may
        # have been committed: resubmitting it is safe.
        while not self.queue.empty():
            self._fail([], ErrorCode.UNAVAILABLE, SHUTTING_DOWN, self.queue.get_nowait())
        self._fail([s for subs in list(self.waiting.values()) for s in subs], ErrorCode.UNAVAILABLE,
                   SHUTTING_DOWN)

    def put(self, event: Event) -> None:
        if isinstance(event, Submission):
            key = (event.client, event.seq)
            self.waiting.setdefault(key, []).append(event)
            event.result.add_done_callback(lambda _: self._answered(key))
        self.queue.put_nowait(event)

    def _answered(self, key: tuple[str, int]) -> None:
        subs = [s for s in self.waiting.get(key, ()) if not s.result.done()]
        if subs:
            self.waiting[key] = subs
        else:
            self.waiting.pop(key, None)

    async def _run(self) -> None:
        while True:
            events = [await self.queue.get()]
            while not self.queue.empty():
                events.append(self.queue.get_nowait())
            batch: list[Submission] = []
            handled = 0  # events[:handled] are done with
            try:
                for i, event in enumerate(events):
                    if isinstance(event, Submission):
                        batch.append(event)
                        if len(batch) >= MAX_GROUP:
                            await self._guard(self._commit(batch), batch)
                            batch = []
                        continue
                    if batch:
                        await self._guard(self._commit(batch), batch)
                        batch = []
                    await self._guard(self._handle(event), [], event)
                    handled = i + 1
                if batch:
                    await self._guard(self._commit(batch), batch)
            except asyncio.CancelledError:  # stop(): submissions are answered there, the rest here
                for event in events[handled:]:
                    self._fail([], ErrorCode.UNAVAILABLE, SHUTTING_DOWN, event)
                raise

    async def _guard(self, step: object, batch: list[Submission], event: Event | None = None) -> None:
        """Run one step; Redis failures and bugs answer the waiting parties, never kill the task."""
        try:
            await step  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except UNAVAILABLE as e:
            log.warning("%s: Redis unavailable: %s", self.name, e)
            self._fail(batch, ErrorCode.UNAVAILABLE, "the op log is unavailable; resubmit later", event)
        except HeadBehind as e:
            # Never reset silently: every connection is closed, and a client that resumes
            # from a revision the log no longer has is told rev_ahead.
            log.error("%s", e)
            self._fail(batch, ErrorCode.UNAVAILABLE, str(e), event)
            for sub in self.subscribers:
                sub.unavailable()
            self.subscribers.clear()
            self.window.clear()
            try:
                await self.load()
            except Exception:
                log.exception("%s: cannot reload; the next head check tries again", self.name)
        except Exception as e:
            log.exception("%s: internal error", self.name)
            self._fail(batch, ErrorCode.INTERNAL, f"internal error: {type(e).__name__}", event)

    def _fail(self, batch: list[Submission], code: ErrorCode, message: str,
              event: Event | None = None) -> None:
        if isinstance(event, Join) and not event.done.done():
            event.done.set_result(Error(code=code, message=message))
        if isinstance(event, FetchRequest):  # the fetch is answered, never silently dropped
            self.metrics.inc("tandem_errors_total", label=code)
            event.sub.deliver(text_of(Error(code=code, message=message)))
            if code == ErrorCode.UNAVAILABLE:
                event.sub.unavailable()
        for sub in batch:
            if sub.result.done():
                continue
            error = Error(code=code, message=message, seq=sub.seq)
            sub.result.set_result(error)
            self.metrics.inc("tandem_errors_total", label=code)
            if sub.origin is not None:
                sub.origin.deliver(text_of(error))
                if code == ErrorCode.UNAVAILABLE:
                    sub.origin.unavailable()

    async def _handle(self, event: Event) -> None:
        match event:
            case Remote(frame):
                await self._remote(frame)
            case HeadCheck():
                await self.catch_up()
            case Join():
                await self._join(event)
            case Leave(sub):
                self._leave(sub)
            case FetchRequest(sub, fetch):
                await self._fetch(sub, fetch)
            case PresenceIn():
                self._presence(event)

    # -- commits -------------------------------------------------------------------------

    async def _commit(self, batch: list[Submission]) -> None:
        # A repeated (client, seq) waits for the next round, which starts from the head the
        # round before advanced (and acked): the log then answers it, as an ack.
        while batch:
            now, batch = split_repeats(batch)
            await self._commit_round([s for s in now if not s.result.done()])

    async def _commit_round(self, batch: list[Submission]) -> None:
        if not batch:
            return
        commit = BatchCommit(
            self, self.store,
            max_doc_length=self.settings.max_doc_length,
            snapshot_interval=self.settings.snapshot_interval,
            max_retries=self.settings.max_commit_retries,
        )
        try:
            planned = await commit.run(batch)
        except RetriesExhausted as e:
            self._fail(batch, ErrorCode.UNAVAILABLE, str(e))
            return
        finally:
            self.metrics.inc("tandem_commit_retries_total", commit.retries)
        if planned:
            self.metrics.inc("tandem_commits_total")
            self.metrics.inc("tandem_ops_committed_total", len(planned))
        for p in planned:
            self._advance(p.stored, p.text)
        for sub, answer in commit.duplicates + commit.refused:
            if sub.result.done():  # answered by the log meanwhile (a catch-up found its op)
                continue
            if isinstance(answer, Ack):
                self.metrics.inc("tandem_duplicates_total")
            else:
                self.metrics.inc("tandem_errors_total", label=answer.code)
            sub.result.set_result(answer)
            if sub.origin is not None:
                sub.origin.deliver(text_of(answer))

    def _advance(self, stored: StoredOp, text: str) -> None:
        """Make ``stored`` the head and send it: the op to every session, except that each
        submission of it still waiting (planned here, or a resubmission of an op committed by
        another process or by a call whose reply was lost) is answered by an ack instead."""
        op = stored.op
        self.rev, self.hash, self.text = op.rev, op.hash, text
        self.window.append(stored)
        submitters = [s for s in self.waiting.pop((op.client, op.seq), ()) if not s.result.done()]
        origins = {id(s.origin) for s in submitters if s.origin is not None}
        frame = stored.frame.decode()
        for sub in self.subscribers:
            sub.rev = self.rev
            if id(sub) not in origins:
                sub.deliver(frame)
        if submitters:
            ack = Ack(seq=op.seq, rev=op.rev, hash=op.hash)
            ack_text = text_of(ack)
            for s in submitters:
                s.result.set_result(ack)
                if s.origin is not None:
                    s.origin.deliver(ack_text)

    # -- ops of other processes ----------------------------------------------------------

    async def _remote(self, frame: bytes) -> None:
        stored = StoredOp.from_frame(frame)
        if stored.op.rev <= self.rev:
            return  # ours, or already read from the log
        if stored.op.rev == self.rev + 1:
            self.metrics.inc("tandem_remote_ops_total")
            self._advance(stored, self._applied(stored))
            return
        self.metrics.inc("tandem_gap_repairs_total")
        await self.catch_up()

    async def catch_up(self) -> None:
        """Apply every op committed by others after our head (a lost notification costs a read)."""
        head = await self.store.head(self.name)
        if head.rev < self.rev:
            raise HeadBehind(f"{self.name}: the log is at revision {head.rev} but revision {self.rev} "
                             "was committed: the op log lost data")
        if head.rev == self.rev and head.hash != self.hash:
            raise HeadBehind(f"{self.name}: the log's revision {head.rev} is not the one held here: "
                             "the op log lost data and took other ops")
        while self.rev < head.rev:
            ops = await self.store.ops(self.name, self.rev + 1, head.rev)
            if not ops or ops[0].op.rev != self.rev + 1:
                raise HistoryGone(f"{self.name}: the log lacks revision {self.rev + 1}")
            for stored in ops:
                self.metrics.inc("tandem_remote_ops_total")
                self._advance(stored, self._applied(stored))

    def _applied(self, stored: StoredOp) -> str:
        """The text after ``stored``, an op learned from the log, checked to follow the head held.

        A log that lost data and took other ops (Redis back from an older or empty data set
        while other processes committed) is never adopted silently, nor built on.
        """
        op = stored.op
        if op.rev != self.rev + 1 or next_hash(self.hash, op.rev, op.client, op.seq, op.ops) != op.hash:
            raise HeadBehind(f"{self.name}: revision {op.rev} in the log does not follow revision "
                             f"{self.rev} held here: the op log lost data")
        try:
            return apply(self.text, op.ops)
        except InvalidOperation as e:
            raise HeadBehind(f"{self.name}: revision {op.rev} in the log does not fit the text "
                             f"held here: {e}") from None

    async def ops_after(self, base: int) -> list[Operation]:
        return [s.op.ops for s in await self._stored_after(base)]

    async def _stored_after(self, base: int, last: int | None = None) -> list[StoredOp]:
        last = self.rev if last is None else last
        if base >= last:
            return []
        if self.window and self.window[0].op.rev <= base + 1:
            start = base + 1 - self.window[0].op.rev
            return [self.window[i] for i in range(start, start + last - base)]
        ops = await self.store.ops(self.name, base + 1, last)
        if len(ops) != last - base or ops[0].op.rev != base + 1:
            raise HistoryGone(f"the log of {self.name!r} no longer holds revision {base + 1}")
        return ops

    # -- sessions ------------------------------------------------------------------------

    async def _join(self, join: Join) -> None:
        sub = join.sub
        if join.rev is not None and join.rev > self.rev:
            await self.catch_up()
        if join.rev is not None and join.rev > self.rev:
            join.done.set_result(Error(
                code=ErrorCode.REV_AHEAD,
                message=f"you hold revision {join.rev} but {self.name!r} is at {self.rev}: "
                "the server lost data or you are on the wrong server",
            ))
            return
        replay: list[StoredOp] | None = None
        if join.rev is not None:
            try:
                replay = await self._stored_after(join.rev)
            except HistoryGone:
                replay = None
        # sub.rev is set before each delivery: a presence without rev refers to the last one written
        if replay is None:
            sub.rev = self.rev
            sub.deliver(text_of(Snapshot(rev=self.rev, text=self.text, hash=self.hash)))
        else:
            for stored in replay:
                sub.rev = stored.op.rev
                sub.deliver(stored.frame.decode())
        sub.rev = self.rev
        sub.deliver(text_of(Ready(rev=self.rev)))
        for update in self.presence.values():
            moved = self._presence_at_head(update)
            if moved is not None and update.client != sub.client:
                sub.deliver(text_of(moved))
        self.subscribers.add(sub)
        join.done.set_result(None)

    def _leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if sub.client in self.presence and not any(s.client == sub.client for s in self.subscribers):
            del self.presence[sub.client]
            gone = PresenceUpdate(client=sub.client, rev=self.rev, cursor=None, user=None)
            self._send_presence(gone, None, publish=True)

    async def _fetch(self, sub: Subscriber, fetch: Fetch) -> None:
        last = self.rev if fetch.to is None else min(fetch.to, self.rev)
        if fetch.from_ > self.rev:
            sub.deliver(text_of(Error(code=ErrorCode.REV_AHEAD,
                                      message=f"fetch from {fetch.from_} is past the head {self.rev}")))
            return
        try:
            ops = await self._stored_after(max(fetch.from_, 1) - 1, last)
        except HistoryGone as e:
            sub.deliver(text_of(Error(code=ErrorCode.NOT_FOUND, message=str(e))))
            return
        for stored in ops:
            sub.deliver(stored.frame.decode())

    def _presence(self, event: PresenceIn) -> None:
        update = event.update
        if not event.remote:
            if update.rev > self.rev:
                if event.sub is not None:
                    self.metrics.inc("tandem_errors_total", label=ErrorCode.BAD_MESSAGE)
                    event.sub.deliver(text_of(Error(
                        code=ErrorCode.BAD_MESSAGE,
                        message=f"presence at revision {update.rev} is past the head {self.rev} of "
                        f"{self.name!r}: a cursor refers to a revision the client holds")))
                return
            if update.cursor is not None:
                # relayed at the head, which every receiver reaches before this message; a cursor
                # older than the window cannot be moved there and is dropped (the next one will do)
                moved = self._presence_at_head(update)
                if moved is None:
                    return
                update = moved
        if update.cursor is None:
            self.presence.pop(update.client, None)
        else:
            self.presence[update.client] = update
        self._send_presence(update, event.sub, publish=not event.remote)

    def _send_presence(self, update: PresenceUpdate, sender: Subscriber | None, *, publish: bool) -> None:
        """Relay to the local subscribers and, when it arose here, to the other processes: encoded once."""
        frame = encode(update)
        if publish:
            self.publish_presence(self.name, frame)
        text = frame.decode()
        for sub in self.subscribers:
            if sub is not sender and sub.client != update.client:
                sub.deliver(text)

    def _presence_at_head(self, update: PresenceUpdate) -> PresenceUpdate | None:
        """``update`` moved to the head, or None when the window no longer holds its revision.

        A cursor moves through an op as its owner's client moves it (ot/client.py, rule 7): an
        insert exactly at the cursor pushes it only when the op is the cursor owner's own.
        """
        if update.cursor is None or update.rev > self.rev:
            return None
        if not self.window or self.window[0].op.rev > update.rev + 1:
            return None if update.rev < self.rev else update
        cursor: Cursor = update.cursor
        for stored in list(self.window)[update.rev + 1 - self.window[0].op.rev:]:
            cursor = transform_cursor(cursor, stored.op.ops, own=stored.op.client == update.client)
        return PresenceUpdate(client=update.client, rev=self.rev, cursor=cursor, user=update.user)

