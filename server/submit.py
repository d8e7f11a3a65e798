"""Exactly-once: every submission of an op to one document is answered once, and committed at
most once. The Python side of that promise lives here, whole (ShareDB keeps it in SubmitRequest);
the commit script in store/redis.py is the arbiter between processes.

The rules, in the order a submission meets them:

1. It waits by (client, seq) until answered (`Submissions.add`). A resubmission of the same
   (client, seq) waits beside the first.
2. Submissions queued together go to Redis as one group commit, each op its own revision.
   A repeated (client, seq) in one group waits for the next round (`_split_repeats`): the
   script compares each op only with the seqs committed before the call, and the round
   before has acknowledged it by then.
3. Each op is checked against the document at its base and rebased through the ops committed
   after that base, then through the ops planned before it in the group (`plan`).
4. The store answers ``ok``; ``moved`` (another process committed first: catch up from the
   log, plan again, at most ``max_commit_retries`` times); or ``duplicate`` (that (client, seq)
   is committed already: answered with its original revision's ack, the rest planned again).
5. An op learned from the log (committed by another process, or by a call whose reply was
   lost) answers its waiting submissions with an ack, never with the op (`acknowledge`).
6. A submission that would be refused (its base is gone from the log, or its op no longer
   fits) is first looked up in its client's record: a committed op is answered with its ack,
   whatever it would do now (a resubmit counts its own op twice).

Nothing is acknowledged before Redis holds it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tandem.ot.algebra import rebase
from tandem.ot.errors import InvalidOperation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import Operation, apply, check, length_delta, normalize, span
from tandem.ot.protocol import Ack, CommittedOp, Error, ErrorCode, Snapshot
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import ClientRecord, HistoryGone, OpStore, StoredOp, text_of


class Origin(Protocol):
    """Where the answer to a submission goes: a session, or an HTTP request."""

    def deliver(self, text: str, rev: int | None = None) -> None:
        """Send ``text``; ``rev``: the revision the receiver holds once it has it (None: unchanged)."""
        ...

    def unavailable(self) -> None: ...


@dataclass(slots=True)
class Submission:
    client: str
    seq: int
    base: int
    ops: Operation
    origin: Origin | None = None
    result: asyncio.Future[Ack | Error] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The code points the op as sent walks (retain + delete): `validate` drops a trailing
    # Retain, which must still fit the document at the base. -1: the span of ``ops``.
    reach: int = -1

    def __post_init__(self) -> None:
        if self.reach < 0:
            self.reach = span(self.ops)


class Refusal(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Planned:
    submission: Submission
    stored: StoredOp
    text: str


class DocumentState(Protocol):
    """What a commit needs from the open document it runs in."""

    name: str
    rev: int
    hash: str
    text: str
    snapshot_rev: int  # the latest snapshot known, and the bytes of op frames committed since
    since_snapshot: int
    committing: int  # the last revision of the commit in flight (0: none)

    def held_after(self, base: int) -> list[Operation] | None:
        """The committed ops after revision ``base`` when a few are held in memory, else None."""
        ...

    def history_after(self, base: int) -> AsyncIterator[Sequence[Operation]]:
        """The committed ops after revision ``base``, in pages, oldest first; raises `HistoryGone`
        when the log no longer holds them."""
        ...

    async def catch_up(self) -> None: ...

    def advance(self, stored: StoredOp, text: str) -> None: ...


class RetriesExhausted(Exception):
    """The head kept moving under one group commit: answered `unavailable`, resubmitting is safe."""


class LogLostData(Exception):
    """The log's head is below (or beside) the revision this process holds: Redis lost acknowledged
    ops. Never adopted silently: the document closes its connections and reloads."""


class _NeedsCatchUp(Exception):
    """Planning needs revisions this process has not heard of yet: catch up, then plan again."""


def validate(ops: Operation, max_components: int) -> Operation:
    """The submitted op in canonical form, or a `Refusal` naming what is wrong with it."""
    if len(ops) > max_components:
        raise Refusal(ErrorCode.TOO_LARGE, f"op has {len(ops)} components; the limit is {max_components}")
    try:
        check(ops)
    except InvalidOperation as e:
        raise Refusal(ErrorCode.BAD_OP, str(e)) from None
    # An op that changes nothing (``[]`` or a lone Retain) is committed like any other: ot.js
    # and ShareDB clients send one when a concurrent delete cancels a buffered edit, and they
    # count its ack as a revision.
    return normalize(ops)


def plan(
    doc: DocumentState,
    submission: Submission,
    rebased: Rebased,
    prev: Planned | None,
    max_doc_length: int,
    now_ms: int | None = None,
) -> Planned:
    """Place one rebased submission after the head (or after the previous planned op of this group).

    ``now_ms``: the commit time stamped on the op (ms since the epoch), outside its hash.
    """
    text = prev.text if prev is not None else doc.text
    prev_hash = prev.stored.op.hash if prev is not None else doc.hash
    rev = (prev.stored.op.rev if prev is not None else doc.rev) + 1
    base_length = len(text) - rebased.length_delta
    if submission.reach > base_length:
        raise Refusal(
            ErrorCode.BAD_OP,
            f"op spans {submission.reach} code points but the document at revision {submission.base} "
            f"has {base_length}",
        )
    try:
        new_text = apply(text, rebased.ops)
    except InvalidOperation as e:  # cannot happen for an op that fits its base; kept as a guard
        raise Refusal(ErrorCode.BAD_OP, str(e)) from None
    if len(new_text) > max_doc_length:
        raise Refusal(
            ErrorCode.TOO_LARGE,
            f"the document would grow to {len(new_text)} code points; the limit is {max_doc_length}",
        )
    op_hash = next_hash(prev_hash, rev, submission.client, submission.seq, rebased.ops)
    return Planned(
        submission,
        StoredOp.of(CommittedOp(rev, submission.client, submission.seq, rebased.ops, op_hash, now_ms)),
        new_text,
    )


@dataclass(slots=True)
class Rebased:
    """A submitted op moved through the history after its base, and what that history did to
    the document's length."""

    ops: Operation
    length_delta: int


async def rebase_bounded(
    submission: Submission, history: AsyncIterator[Sequence[Operation]], max_components: int
) -> Rebased:
    """Rebase ``submission`` through ``history`` (pages of ops, oldest first) one op at a time.

    The work is bounded: each op transformed costs its components plus the submitted op's, and
    past ``max_components`` in all the submission is refused (`too_large`) before more is done.
    The event loop gets a turn every `REBASE_SLICE` components, so one long rebase never stalls
    other documents or /healthz.
    """
    ops = submission.ops
    spent = since_yield = delta = 0
    async for page in history:
        for op in page:
            cost = len(op) + len(ops)
            spent += cost
            if spent > max_components:
                raise Refusal(
                    ErrorCode.TOO_LARGE,
                    f"base {submission.base} is too far behind: rebasing the op through the history "
                    f"after it passes more than {max_components} components; reload (hello without rev) "
                    "and make the edit again",
                )
            ops = rebase(ops, (op,))
            delta += length_delta(op)
            since_yield += cost
            if since_yield >= REBASE_SLICE:
                since_yield = 0
                await asyncio.sleep(0)
    return Rebased(ops, delta)


def rebase_held(submission: Submission, history: Sequence[Operation], max_components: int) -> Rebased | None:
    """`rebase_bounded` through a short ``history`` held in memory, done at once (most ops are
    based on the head or one op behind it). None when the work passes one `REBASE_SLICE` or
    ``max_components``: `rebase_bounded` does it then, yielding and refusing as it must."""
    limit = min(max_components, REBASE_SLICE)
    ops = submission.ops
    spent = delta = 0
    for op in history:
        spent += len(op) + len(ops)
        if spent > limit:
            return None
        ops = rebase(ops, (op,))
        delta += length_delta(op)
    return Rebased(ops, delta)


# Retries of a commit that go at once; after them a random wait of up to 1 ms, doubling to 8 ms.
JITTER_AFTER_RETRIES = 3
RETRY_JITTER_SECONDS = 0.0005

# Components a rebase works through between two turns of the event loop (~10 ms of CPU).
REBASE_SLICE = 20_000


class Submissions:
    """The submissions of one open document that are not answered yet, and their group commits.

    Called only from the document's task (no locks): `commit` while it handles a group, and
    `acknowledge` each time the document advances, whoever committed the op.
    """

    def __init__(self, doc: DocumentState, store: OpStore, settings: Settings, metrics: Metrics) -> None:
        self.doc = doc
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.waiting: dict[tuple[str, int], list[Submission]] = {}

    def add(self, submission: Submission) -> None:
        key = (submission.client, submission.seq)
        self.waiting.setdefault(key, []).append(submission)
        submission.result.add_done_callback(lambda _: self._answered(key))

    def _answered(self, key: tuple[str, int]) -> None:
        still = [s for s in self.waiting.get(key, ()) if not s.result.done()]
        if still:
            self.waiting[key] = still
        else:
            self.waiting.pop(key, None)

    def acknowledge(self, op: CommittedOp) -> set[int]:
        """Answer every submission of ``op`` still waiting with its ack; the ids of their origins
        (those are sent the ack instead of the op)."""
        key = (op.client, op.seq)
        if key not in self.waiting:
            return set()
        submitters = [s for s in self.waiting.pop(key) if not s.result.done()]
        if not submitters:
            return set()
        ack = Ack(seq=op.seq, rev=op.rev, hash=op.hash)
        ack_text = text_of(ack)
        for s in submitters:
            s.result.set_result(ack)
            if s.origin is not None:
                s.origin.deliver(ack_text, op.rev)
        return {id(s.origin) for s in submitters if s.origin is not None}

    async def commit(self, group: list[Submission]) -> None:
        """Commit a group queued together; the document advances through each committed op."""
        while group:
            now, group = _split_repeats(group)
            await self._commit_round([s for s in now if not s.result.done()])

    async def _commit_round(self, group: list[Submission]) -> None:
        if not group:
            return
        commit = _GroupCommit(
            self.doc,
            self.store,
            max_doc_length=self.settings.max_doc_length,
            snapshot_interval=self.settings.snapshot_interval,
            max_retries=self.settings.max_commit_retries,
            max_rebase_components=self.settings.max_rebase_components,
        )
        started = time.perf_counter()
        try:
            planned = await commit.run(group)
        except RetriesExhausted as e:
            self.fail(group, ErrorCode.UNAVAILABLE, str(e))
            return
        finally:
            self.metrics.inc("tandem_commit_retries_total", commit.retries)
        if planned:
            self.metrics.observe("tandem_commit_duration_seconds", time.perf_counter() - started)
            self.metrics.inc("tandem_commits_total")
            self.metrics.inc("tandem_ops_committed_total", len(planned))
        for p in planned:
            self.doc.advance(p.stored, p.text)
        for submission, answer in commit.duplicates + commit.refused:
            if submission.result.done():  # answered by the log meanwhile (a catch-up found its op)
                continue
            if isinstance(answer, Ack):
                self.metrics.inc("tandem_duplicates_total")
            else:
                self.metrics.inc("tandem_errors_total", label=answer.code)
            submission.result.set_result(answer)
            if submission.origin is not None:
                submission.origin.deliver(text_of(answer))

    def fail(self, group: list[Submission], code: ErrorCode, message: str) -> None:
        """Answer every submission of ``group`` not answered yet with an error."""
        for submission in group:
            if submission.result.done():
                continue
            error = Error(code=code, message=message, seq=submission.seq)
            submission.result.set_result(error)
            self.metrics.inc("tandem_errors_total", label=code)
            if submission.origin is not None:
                submission.origin.deliver(text_of(error))
                if code == ErrorCode.UNAVAILABLE:
                    submission.origin.unavailable()

    def fail_all(self, code: ErrorCode, message: str) -> None:
        self.fail([s for waiting in list(self.waiting.values()) for s in waiting], code, message)


# A snapshot waits for ops of 1/8 of the text's size: snapshots then cost at most 8 times the
# ops (not a share of the document per op), and a read of the text replays ops of 1/8 of it
# at most (~830 one-character ops on a million code points, tens of milliseconds).
SNAPSHOT_TEXT_SHARE = 8


class _GroupCommit:
    """One group commit of submissions on one document, with its retries."""

    def __init__(
        self,
        doc: DocumentState,
        store: OpStore,
        *,
        max_doc_length: int,
        snapshot_interval: int,
        max_retries: int,
        max_rebase_components: int,
    ) -> None:
        self.doc = doc
        self.store = store
        self.max_rebase_components = max_rebase_components
        self.max_doc_length = max_doc_length
        self.snapshot_interval = snapshot_interval
        self.max_retries = max_retries
        self.retries = 0
        self.refused: list[tuple[Submission, Error]] = []
        self.duplicates: list[tuple[Submission, Ack | Error]] = []

    async def run(self, pending: list[Submission]) -> list[Planned]:
        """Commit what can be committed; refusals and duplicates are collected on self.

        ``pending`` holds no (client, seq) twice (see `_split_repeats`).
        """
        caught_up = False
        while pending:
            try:
                planned = await self._plan_all(pending, caught_up)
            except _NeedsCatchUp:
                await self._catch_up()
                caught_up = True
                pending = self._unanswered(pending)
                continue
            if not planned:
                return []
            snapshot = self._snapshot(planned)
            self.doc.committing = planned[-1].stored.op.rev
            try:
                result = await self.store.commit(
                    self.doc.name, self.doc.rev, [p.stored for p in planned], snapshot
                )
            finally:
                self.doc.committing = 0
            if result.status == "ok":
                if snapshot is not None:
                    self.doc.snapshot_rev = snapshot.rev
                return planned
            if result.status == "moved":
                assert result.head is not None
                if result.head.rev < self.doc.rev:
                    raise LogLostData(
                        f"{self.doc.name}: the log is at revision {result.head.rev} but "
                        f"revision {self.doc.rev} was committed: the op log lost data"
                    )
                await self._catch_up()
                # catching up may have answered some of them: their ops were committed already
                pending = self._unanswered([p.submission for p in planned])
                continue
            dup = planned[result.index].submission
            assert result.original is not None
            self.duplicates.append((dup, _answer_duplicate(dup, result.original)))
            pending = [p.submission for p in planned if p.submission is not dup]
        return []

    async def _catch_up(self) -> None:
        self.retries += 1
        if self.retries > self.max_retries:
            raise RetriesExhausted(f"{self.doc.name}: the head moved {self.retries} times during one commit")
        if self.retries > JITTER_AFTER_RETRIES:
            # Lost again and again: two processes retrying in step would keep colliding; a random
            # wait, growing, breaks the step. The first retries go at once: most races are lost to
            # a process that merely committed its own next op, and waiting only loses more.
            wait = RETRY_JITTER_SECONDS * 2 ** min(self.retries - JITTER_AFTER_RETRIES, 4)
            await asyncio.sleep(random.uniform(0, wait))
        await self.doc.catch_up()

    def _unanswered(self, submissions: list[Submission]) -> list[Submission]:
        if not self.refused and not self.duplicates:
            return [s for s in submissions if not s.result.done()]
        settled = {id(s) for s, _ in self.refused + self.duplicates}
        return [s for s in submissions if not s.result.done() and id(s) not in settled]

    async def _plan_all(self, pending: list[Submission], caught_up: bool) -> list[Planned]:
        """Plan every submission still unanswered; raises `_NeedsCatchUp` when the log is ahead."""
        planned: list[Planned] = []
        now_ms = time.time_ns() // 1_000_000  # one commit time for the whole group
        for submission in self._unanswered(pending):
            if submission.base > self.doc.rev:
                if not caught_up:  # the client saw a revision this process has not heard of yet
                    raise _NeedsCatchUp
                self._refuse(
                    submission,
                    ErrorCode.REV_AHEAD,
                    f"base {submission.base} is ahead of the document's revision {self.doc.rev}",
                )
                continue
            held = self.doc.held_after(submission.base)
            rebased = None
            if held is not None:
                held += (p.stored.op.ops for p in planned)
                rebased = rebase_held(submission, held, self.max_rebase_components)
            try:
                if rebased is None:
                    history = _then(
                        self.doc.history_after(submission.base), [p.stored.op.ops for p in planned]
                    )
                    rebased = await rebase_bounded(submission, history, self.max_rebase_components)
            except HistoryGone as e:
                if not await self._answer_committed(submission):
                    self._refuse(
                        submission, ErrorCode.BAD_OP, f"cannot rebase from base {submission.base}: {e}"
                    )
                continue
            except Refusal as r:
                if not await self._answer_committed(submission):  # rule 6
                    self._refuse(submission, r.code, r.message)
                continue
            try:
                planned.append(
                    plan(
                        self.doc,
                        submission,
                        rebased,
                        planned[-1] if planned else None,
                        self.max_doc_length,
                        now_ms,
                    )
                )
            except Refusal as r:
                if not await self._answer_committed(submission):  # rule 6
                    self._refuse(submission, r.code, r.message)
        return planned

    async def _answer_committed(self, submission: Submission) -> bool:
        """Answer ``submission`` from its client's record when its seq is committed already.

        Costs a Redis read, so only on paths that would otherwise refuse it. A record past
        this process's head raises `_NeedsCatchUp`: the ops before it go to the client first.
        """
        record = await self.store.client_record(self.doc.name, submission.client)
        if record is None or record.seq < submission.seq:
            return False
        if record.rev > self.doc.rev:
            raise _NeedsCatchUp
        self.duplicates.append((submission, _answer_duplicate(submission, record)))
        return True

    def _refuse(self, submission: Submission, code: ErrorCode, message: str) -> None:
        self.refused.append((submission, Error(code=code, message=message, seq=submission.seq)))

    def _snapshot(self, planned: list[Planned]) -> Snapshot | None:
        """A snapshot at the last planned op at which one is due: ``snapshot_interval`` revisions
        and bytes of op frames of at least 1/`SNAPSHOT_TEXT_SHARE` of the text's code points since
        the latest one.

        A snapshot costs the text's size, so on a large document a snapshot per N revisions would
        make every op cost a share of the document; this way the snapshots cost at most
        `SNAPSHOT_TEXT_SHARE` times the ops (storage per op in proportion to the op), and reading
        the text (a load, GET /docs/{doc}) replays ops of at most 1/`SNAPSHOT_TEXT_SHARE` of it.
        """
        due: Planned | None = None
        since = self.doc.since_snapshot * SNAPSHOT_TEXT_SHARE
        for p in planned:
            since += len(p.stored.frame) * SNAPSHOT_TEXT_SHARE
            if p.stored.op.rev - self.doc.snapshot_rev >= self.snapshot_interval and since >= len(p.text):
                due = p
        if due is None:
            return None
        return Snapshot(rev=due.stored.op.rev, text=due.text, hash=due.stored.op.hash)


async def _then(
    pages: AsyncIterator[Sequence[Operation]], last: Sequence[Operation]
) -> AsyncIterator[Sequence[Operation]]:
    async for page in pages:
        yield page
    yield last


def _split_repeats(group: list[Submission]) -> tuple[list[Submission], list[Submission]]:
    """Split off submissions whose client already has one at the same or a higher seq earlier."""
    now: list[Submission] = []
    later: list[Submission] = []
    last: dict[str, int] = {}
    for submission in group:
        if submission.client in last and submission.seq <= last[submission.client]:
            later.append(submission)
        else:
            last[submission.client] = submission.seq
            now.append(submission)
    return now, later


def _answer_duplicate(submission: Submission, original: ClientRecord) -> Ack | Error:
    if original.seq == submission.seq:
        return Ack(seq=submission.seq, rev=original.rev, hash=original.hash)
    return Error(
        code=ErrorCode.BAD_MESSAGE,
        message=f"seq {submission.seq} of client {submission.client!r} is below its last committed "
        f"seq {original.seq}",
        seq=submission.seq,
    )
