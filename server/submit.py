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
from collections.abc import Sequence
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

    async def ops_after(self, base: int) -> list[Operation]: ...

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
    committed: Sequence[Operation],
    prev: Planned | None,
    max_doc_length: int,
) -> Planned:
    """Rebase one submission onto the head (or onto the previous planned op of this group)."""
    text = prev.text if prev is not None else doc.text
    prev_hash = prev.stored.op.hash if prev is not None else doc.hash
    rev = (prev.stored.op.rev if prev is not None else doc.rev) + 1
    base_length = len(text) - sum(length_delta(op) for op in committed)
    if span(submission.ops) > base_length:
        raise Refusal(
            ErrorCode.BAD_OP,
            f"op spans {span(submission.ops)} code points but the document at revision {submission.base} "
            f"has {base_length}",
        )
    ops = rebase(submission.ops, committed)
    try:
        new_text = apply(text, ops)
    except InvalidOperation as e:  # cannot happen for an op that fits its base; kept as a guard
        raise Refusal(ErrorCode.BAD_OP, str(e)) from None
    if len(new_text) > max_doc_length:
        raise Refusal(
            ErrorCode.TOO_LARGE,
            f"the document would grow to {len(new_text)} code points; the limit is {max_doc_length}",
        )
    op_hash = next_hash(prev_hash, rev, submission.client, submission.seq, ops)
    return Planned(
        submission, StoredOp.of(CommittedOp(rev, submission.client, submission.seq, ops, op_hash)), new_text
    )


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
        )
        try:
            planned = await commit.run(group)
        except RetriesExhausted as e:
            self.fail(group, ErrorCode.UNAVAILABLE, str(e))
            return
        finally:
            self.metrics.inc("tandem_commit_retries_total", commit.retries)
        if planned:
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
    ) -> None:
        self.doc = doc
        self.store = store
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
            result = await self.store.commit(
                self.doc.name, self.doc.rev, [p.stored for p in planned], self._snapshot(planned)
            )
            if result.status == "ok":
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
        await self.doc.catch_up()

    def _unanswered(self, submissions: list[Submission]) -> list[Submission]:
        settled = {id(s) for s, _ in self.refused + self.duplicates}
        return [s for s in submissions if not s.result.done() and id(s) not in settled]

    async def _plan_all(self, pending: list[Submission], caught_up: bool) -> list[Planned]:
        """Plan every submission still unanswered; raises `_NeedsCatchUp` when the log is ahead."""
        planned: list[Planned] = []
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
            try:
                committed = await self.doc.ops_after(submission.base)
            except HistoryGone as e:
                if not await self._answer_committed(submission):
                    self._refuse(
                        submission, ErrorCode.BAD_OP, f"cannot rebase from base {submission.base}: {e}"
                    )
                continue
            committed += [p.stored.op.ops for p in planned]
            try:
                planned.append(
                    plan(
                        self.doc, submission, committed, planned[-1] if planned else None, self.max_doc_length
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
        for p in reversed(planned):
            if p.stored.op.rev % self.snapshot_interval == 0:
                return Snapshot(rev=p.stored.op.rev, text=p.text, hash=p.stored.op.hash)
        return None


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
