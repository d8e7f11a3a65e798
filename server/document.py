"""One open document in this process: cached head, recent ops, local receivers.

Every change to the document's state happens in its single task, which takes events from
one queue: submissions (grouped into one commit), ops learned from other processes,
joins, fetches, presence and periodic head checks. No locks are needed inside a process;
between processes the commit in Redis is the arbiter.

The document orders events and fans out: each committed op is encoded once and appended to
the document's broadcast log (server/broadcast.py), which every session reads from its own
cursor when it writes. What is promised about submissions (exactly-once, answered
by an ack at the op's place in the revision order, whoever committed it) lives in
server/submit.py; what is relayed about cursors, in server/presence.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tandem.ot.errors import InvalidOperation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import Operation, apply
from tandem.ot.protocol import Error, ErrorCode, Fetch, PresenceUpdate, Ready, Snapshot
from tandem.server.broadcast import Broadcast, Follower
from tandem.server.inbox import Inbox
from tandem.server.metrics import Metrics
from tandem.server.presence import PresenceRelay
from tandem.server.settings import Settings
from tandem.server.store.base import PAGE_BYTES, HistoryGone, OpStore, StoredOp, StoreUnavailable, text_of
from tandem.server.submit import LogLostData, Origin, Submission, Submissions
from tandem.server.window import Window

log = logging.getLogger("tandem.document")

SHUTTING_DOWN = "the server is shutting down; resubmit (an op already committed is acknowledged)"

WINDOW = 2048
# Ops in one page of history (a rebase reads the history a page at a time).
_PAGE = 256
# Ops behind the head that a rebase may take from memory at once (`held_after`).
_FEW = 64
# Ops committed in one script call at most: a bigger group would hold Redis up for others.
MAX_GROUP = 256


class Receiver(Origin, Protocol):
    """A receiver of one document's messages: a WebSocket session. Each op or ack it is sent
    carries the revision it brings the receiver to (`Origin.deliver`). A receiver that is a
    `Follower` (a session) reads the committed ops from the broadcast log; any other is sent
    each op."""

    client: str


@dataclass(slots=True)
class Join:
    receiver: Receiver
    rev: int | None
    done: asyncio.Future[Error | None]


@dataclass(slots=True)
class Leave:
    receiver: Receiver


@dataclass(slots=True)
class FetchRequest:
    receiver: Receiver
    fetch: Fetch


@dataclass(slots=True)
class PresenceIn:
    sender: Receiver | None
    update: PresenceUpdate
    remote: bool


@dataclass(slots=True)
class Remote:
    frame: bytes


@dataclass(slots=True)
class HeadCheck:
    pass


Event = Submission | Join | Leave | FetchRequest | PresenceIn | Remote | HeadCheck


class Document:
    def __init__(
        self,
        name: str,
        store: OpStore,
        settings: Settings,
        metrics: Metrics,
        publish_presence: Callable[[str, bytes], None],
    ) -> None:
        self.name = name
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.rev = 0
        self.hash = ""
        self.text = ""
        self.window = Window(WINDOW, settings.window_bytes)
        self.receivers: set[Receiver] = set()
        self.log = self._new_log()
        self.pushed: list[Receiver] = []  # the receivers that are not followers of the log
        self.presence = PresenceRelay(name, publish_presence)
        self.submissions = Submissions(self, store, settings, metrics)
        self.inbox: Inbox[Event] = Inbox()
        self.task: asyncio.Task[None] | None = None
        self.users = 0  # sessions and requests holding the document open
        # The latest snapshot this process knows of and the bytes of op frames since: the next
        # one waits for those to reach a share of the text's size (`_GroupCommit._snapshot`).
        self.snapshot_rev = 0
        self.since_snapshot = 0
        self.committing = 0  # the last revision of the commit in flight (0: none)

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
        self.snapshot_rev, self.since_snapshot = snap.rev, sum(len(s.frame) for s in ops)
        self.window.extend(ops)
        self.log = self._new_log()

    def _new_log(self) -> Broadcast:
        # A new object, never a reset one: a closing session may still read its ops from the old.
        return Broadcast(self.rev, self.settings.send_queue_limit, self.settings.send_queue_bytes)

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
        for event in self.inbox.drain():
            if not isinstance(event, Submission):
                self._fail(event, ErrorCode.UNAVAILABLE, SHUTTING_DOWN)
        self.submissions.fail_all(ErrorCode.UNAVAILABLE, SHUTTING_DOWN)

    def put(self, event: Event) -> None:
        if isinstance(event, Submission):
            self.submissions.add(event)
        self.inbox.put(event)

    async def _run(self) -> None:
        while True:
            await self._handle_all(await self.inbox.take_all())

    async def _handle_all(self, events: list[Event]) -> None:
        """One batch of events, in order; returns before the next wait, so an idle document
        holds none of them."""
        group: list[Submission] = []
        handled = 0  # events[:handled] are done with
        try:
            for i, event in enumerate(events):
                if isinstance(event, Submission):
                    group.append(event)
                    if len(group) >= MAX_GROUP:
                        await self._guard(self.submissions.commit(group), group)
                        group = []
                    continue
                if group:
                    await self._guard(self.submissions.commit(group), group)
                    group = []
                await self._guard(self._handle(event), [], event)
                handled = i + 1
            if group:
                await self._guard(self.submissions.commit(group), group)
        except asyncio.CancelledError:  # stop(): submissions are answered there, the rest here
            for event in events[handled:]:
                if not isinstance(event, Submission):
                    self._fail(event, ErrorCode.UNAVAILABLE, SHUTTING_DOWN)
            raise

    async def _guard(
        self, step: Awaitable[None], group: list[Submission], event: Event | None = None
    ) -> None:
        """Run one step; store failures and bugs answer the waiting parties, never kill the task."""
        try:
            await step
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as e:
            log.warning("%s: the op log is unavailable: %s", self.name, e)
            message = "the op log is unavailable; resubmit later"
            self.submissions.fail(group, ErrorCode.UNAVAILABLE, message)
            self._fail(event, ErrorCode.UNAVAILABLE, message)
            if group:  # a commit whose outcome is unknown: its notification was not listened to
                self.inbox.put(HeadCheck())
        except LogLostData as e:
            # Never reset silently: every connection is closed, and a client that resumes
            # from a revision the log no longer has is told rev_ahead.
            log.error("%s", e)
            self.submissions.fail(group, ErrorCode.UNAVAILABLE, str(e))
            self._fail(event, ErrorCode.UNAVAILABLE, str(e))
            for receiver in self.receivers:
                receiver.unavailable()
            self.receivers.clear()
            self.pushed.clear()
            self.window.clear()
            try:
                await self.load()
            except Exception:
                log.exception("%s: cannot reload; the next head check tries again", self.name)
        except Exception as e:
            log.exception("%s: internal error", self.name)
            message = f"internal error: {type(e).__name__}"
            self.submissions.fail(group, ErrorCode.INTERNAL, message)
            self._fail(event, ErrorCode.INTERNAL, message)

    def _fail(self, event: Event | None, code: ErrorCode, message: str) -> None:
        """Answer an event that waits for one (a join, a fetch) with an error."""
        if isinstance(event, Join) and not event.done.done():
            event.done.set_result(Error(code=code, message=message))
        if isinstance(event, FetchRequest):  # the fetch is answered, never silently dropped
            self.metrics.inc("tandem_errors_total", label=code)
            event.receiver.deliver(text_of(Error(code=code, message=message)))
            if code == ErrorCode.UNAVAILABLE:
                event.receiver.unavailable()

    async def _handle(self, event: Event) -> None:
        match event:
            case Remote(frame):
                await self._remote(frame)
            case HeadCheck():
                await self.catch_up()
            case Join():
                await self._join(event)
            case Leave(receiver):
                self._leave(receiver)
            case FetchRequest(receiver, fetch):
                await self._fetch(receiver, fetch)
            case PresenceIn():
                self._presence(event)

    # -- the head ------------------------------------------------------------------------

    def advance(self, stored: StoredOp, text: str) -> None:
        """Make ``stored`` the head and send it: the op to every receiver, except that each
        submission of it still waiting (planned here, or a resubmission of an op committed by
        another process or by a call whose reply was lost) is answered by an ack instead."""
        op = stored.op
        self.rev, self.hash, self.text = op.rev, op.hash, text
        self.since_snapshot = 0 if op.rev <= self.snapshot_rev else self.since_snapshot + len(stored.frame)
        self.window.append(stored)
        # The acks first: a follower's ack takes its op's place (the follower skips past it).
        acked = self.submissions.acknowledge(op)
        frame = stored.frame.decode()
        self.log.append(frame, len(stored.frame))
        for receiver in self.pushed:
            if id(receiver) not in acked:
                receiver.deliver(frame, op.rev)

    # -- ops of other processes ----------------------------------------------------------

    def learns_otherwise(self, last_rev: int | None) -> bool:
        """Whether the ops up to ``last_rev``, just published, reach this document without their
        notification: it holds them, or they fall within its commit in flight. That commit
        was this process's (its reply advances the head); or another process's ops took those
        revisions first (the commit is refused as moved and the catch-up reads them); or its
        outcome is lost (a head check follows, see `_guard`)."""
        return last_rev is not None and last_rev <= max(self.rev, self.committing)

    async def _remote(self, frame: bytes) -> None:
        stored = StoredOp.from_frame(frame)
        if stored.op.rev <= self.rev:
            return  # ours, or already read from the log
        if stored.op.rev == self.rev + 1:
            self.metrics.inc("tandem_remote_ops_total")
            self.advance(stored, self._applied(stored))
            return
        self.metrics.inc("tandem_gap_repairs_total")
        await self.catch_up()

    async def catch_up(self) -> None:
        """Apply every op committed by others after our head (a lost notification costs a read)."""
        head = await self.store.head(self.name)
        if head.rev < self.rev:
            raise LogLostData(
                f"{self.name}: the log is at revision {head.rev} but revision {self.rev} "
                "was committed: the op log lost data"
            )
        if head.rev == self.rev and head.hash != self.hash:
            raise LogLostData(
                f"{self.name}: the log's revision {head.rev} is not the one held here: "
                "the op log lost data and took other ops"
            )
        while self.rev < head.rev:
            ops = await self.store.ops(self.name, self.rev + 1, head.rev)
            if not ops or ops[0].op.rev != self.rev + 1:
                raise HistoryGone(f"{self.name}: the log lacks revision {self.rev + 1}")
            for stored in ops:
                self.metrics.inc("tandem_remote_ops_total")
                self.advance(stored, self._applied(stored))

    def _applied(self, stored: StoredOp) -> str:
        """The text after ``stored``, an op learned from the log, checked to follow the head held.

        A log that lost data and took other ops (Redis back from an older or empty data set
        while other processes committed) is never adopted silently, nor built on.
        """
        op = stored.op
        if op.rev != self.rev + 1 or next_hash(self.hash, op.rev, op.client, op.seq, op.ops) != op.hash:
            raise LogLostData(
                f"{self.name}: revision {op.rev} in the log does not follow revision "
                f"{self.rev} held here: the op log lost data"
            )
        try:
            return apply(self.text, op.ops)
        except InvalidOperation as e:
            raise LogLostData(
                f"{self.name}: revision {op.rev} in the log does not fit the text held here: {e}"
            ) from None

    def held_after(self, base: int) -> list[Operation] | None:
        if self.rev - base > _FEW:
            return None
        held = self.window.after(base, self.rev)
        return None if held is None else [s.op.ops for s in held]

    async def history_after(self, base: int) -> AsyncIterator[Sequence[Operation]]:
        """The ops after ``base`` up to the head, in pages: from the window, or read from the log a
        page at a time (never the whole history in memory at once)."""
        held = self.window.after(base, self.rev)
        if held is not None:
            for i in range(0, len(held), _PAGE):
                yield [s.op.ops for s in held[i : i + _PAGE]]
            return
        async for page in self._logged(base + 1, self.rev):
            yield [s.op.ops for s in page]

    async def _logged(self, first: int, last: int) -> AsyncIterator[list[StoredOp]]:
        """Revisions ``first``..``last`` read from the log a page (`PAGE_BYTES`) at a time."""
        while first <= last:
            page = await self.store.ops(self.name, first, last, max_bytes=PAGE_BYTES)
            if not page or page[0].op.rev != first or page[-1].op.rev != first + len(page) - 1:
                raise HistoryGone(f"the log of {self.name!r} no longer holds revision {first}")
            yield page
            first += len(page)

    async def _answer(self, base: int, last: int) -> list[StoredOp] | None:
        """Revisions after ``base`` up to ``last`` to send one receiver (a replay or a fetch), or None
        when they are more than `Settings.answer_max_bytes`. Raises `HistoryGone`."""
        held = self.window.after(base, last)
        if held is None:
            held = []
            size = 0
            async for page in self._logged(base + 1, last):
                held += page
                size += sum(len(s.frame) for s in page)
                if size > self.settings.answer_max_bytes:
                    return None
        elif sum(len(s.frame) for s in held) > self.settings.answer_max_bytes:
            return None
        return held

    # -- sessions ------------------------------------------------------------------------

    async def _join(self, join: Join) -> None:
        receiver = join.receiver
        # Read the log's head first: a client sees every op acknowledged before it joined,
        # whichever process committed it (a notification may still be on its way here). With
        # the log unreachable, what this process holds is served, as the client expects.
        try:
            await self.catch_up()
        except StoreUnavailable:
            if join.rev is not None and join.rev > self.rev:
                raise
        if join.rev is not None and join.rev > self.rev:
            join.done.set_result(
                Error(
                    code=ErrorCode.REV_AHEAD,
                    message=f"you hold revision {join.rev} but {self.name!r} is at {self.rev}: "
                    "the server lost data or you are on the wrong server",
                )
            )
            return
        # a replay the log no longer holds, or too large to answer, is a snapshot instead
        replay: list[StoredOp] | None = None
        if join.rev is not None:
            try:
                replay = await self._answer(join.rev, self.rev)
            except HistoryGone:
                replay = None
        if replay is None:
            receiver.deliver(text_of(Snapshot(rev=self.rev, text=self.text, hash=self.hash)), self.rev)
        else:
            for stored in replay:
                receiver.deliver(stored.frame.decode(), stored.op.rev)
        receiver.deliver(text_of(Ready(rev=self.rev)), self.rev)
        self.presence.joined(receiver, self.rev, self.window, self.settings.presence_max_components)
        self.receivers.add(receiver)
        if isinstance(receiver, Follower):
            receiver.follow(self.log)  # from the head on: every later op, each once
        else:
            self.pushed.append(receiver)
        join.done.set_result(None)

    def _leave(self, receiver: Receiver) -> None:
        self.receivers.discard(receiver)
        if receiver in self.pushed:
            self.pushed.remove(receiver)
        if isinstance(receiver, Follower):
            self.log.discard(receiver)
        self.presence.left(receiver.client, self.rev, self.receivers)

    async def _fetch(self, receiver: Receiver, fetch: Fetch) -> None:
        last = self.rev if fetch.to is None else min(fetch.to, self.rev)
        if fetch.from_ > self.rev:
            receiver.deliver(
                text_of(
                    Error(
                        code=ErrorCode.REV_AHEAD,
                        message=f"fetch from {fetch.from_} is past the head {self.rev}",
                    )
                )
            )
            return
        if fetch.to is not None and fetch.from_ > fetch.to:
            receiver.deliver(
                text_of(
                    Error(
                        code=ErrorCode.BAD_MESSAGE,
                        message=f"fetch from {fetch.from_} is past its to {fetch.to}",
                    )
                )
            )
            return
        try:
            ops = await self._answer(max(fetch.from_, 1) - 1, last)
        except HistoryGone as e:
            receiver.deliver(text_of(Error(code=ErrorCode.NOT_FOUND, message=str(e))))
            return
        if ops is None:
            # Far behind: a resume answers it, with a replay it can hold or a snapshot.
            receiver.deliver(
                text_of(
                    Error(
                        code=ErrorCode.TOO_LARGE,
                        message=f"revisions {fetch.from_}..{last} are more than "
                        f"{self.settings.answer_max_bytes} bytes: resume with hello",
                    )
                )
            )
            receiver.unavailable()
            return
        for stored in ops:
            receiver.deliver(stored.frame.decode())

    def _presence(self, event: PresenceIn) -> None:
        update = event.update
        if update is self.presence.REFRESH:  # the hub's periodic turn: renew ours, expire the dead
            self.presence.refresh(self.rev, self.receivers, self.settings.presence_ttl_seconds)
            return
        if not event.remote and update.rev > self.rev:
            if event.sender is not None:
                self.metrics.inc("tandem_errors_total", label=ErrorCode.BAD_MESSAGE)
                event.sender.deliver(
                    text_of(
                        Error(
                            code=ErrorCode.BAD_MESSAGE,
                            message=f"presence at revision {update.rev} is past the head {self.rev} of "
                            f"{self.name!r}: a cursor refers to a revision the client holds",
                        )
                    )
                )
            return
        problem = self.presence.update(
            update,
            event.sender,
            remote=event.remote,
            head=self.rev,
            window=self.window,
            peers=self.receivers,
            length=len(self.text),
            budget=self.settings.presence_max_components,
        )
        if problem is not None and event.sender is not None:
            self.metrics.inc("tandem_errors_total", label=ErrorCode.BAD_MESSAGE)
            event.sender.deliver(text_of(Error(code=ErrorCode.BAD_MESSAGE, message=problem)))
