"""A submit as a request: dedupe, rebase, commit at the expected revision, retry.

The path of a group of ops queued on one document (ShareDB's SubmitRequest, for a batch):

1. each op is checked against the document at its base and rebased through the ops
   committed after that base, then through the ops planned before it in this batch;
2. the batch goes to Redis in one commit at the expected head, each op its own revision;
3. the store answers ``ok``, ``moved`` (another process committed first: read the new ops,
   plan again) or ``duplicate`` (that (client, seq) is already committed: answer it with
   its original revision, plan the rest again). Retries after ``moved`` are capped.

Nothing is acknowledged before Redis holds it. A submission may be answered while it waits
(the document learned its (client, seq) from the log): it is then left out of the plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tandem.ot.errors import InvalidOperation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import Operation, apply, check, length_delta, normalize, rebase, span
from tandem.ot.protocol import Ack, CommittedOp, Error, ErrorCode, Snapshot
from tandem.server.store.base import ClientRecord, HistoryGone, OpStore, StoredOp


class Origin(Protocol):
    """Where the answer to a submission goes: a session, or an HTTP request."""

    def deliver(self, text: str) -> None: ...

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


class RetriesExhausted(Exception):
    pass


class _Behind(Exception):
    """Planning needs revisions this process has not heard of yet: catch up, then plan again."""


class HeadBehind(Exception):
    """The log's head is below the revision this process holds: Redis lost acknowledged ops."""


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


def plan(doc: DocumentState, sub: Submission, committed: Sequence[Operation], prev: Planned | None,
         max_doc_length: int) -> Planned:
    """Rebase one submission onto the head (or onto the previous planned op of this batch)."""
    text = prev.text if prev is not None else doc.text
    prev_hash = prev.stored.op.hash if prev is not None else doc.hash
    rev = (prev.stored.op.rev if prev is not None else doc.rev) + 1
    base_length = len(text) - sum(length_delta(op) for op in committed)
    if span(sub.ops) > base_length:
        raise Refusal(
            ErrorCode.BAD_OP,
            f"op spans {span(sub.ops)} code points but the document at revision {sub.base} has {base_length}",
        )
    ops = rebase(sub.ops, committed)
    try:
        new_text = apply(text, ops)
    except InvalidOperation as e:  # cannot happen for an op that fits its base; kept as a guard
        raise Refusal(ErrorCode.BAD_OP, str(e)) from None
    if len(new_text) > max_doc_length:
        raise Refusal(
            ErrorCode.TOO_LARGE,
            f"the document would grow to {len(new_text)} code points; the limit is {max_doc_length}",
        )
    op_hash = next_hash(prev_hash, rev, sub.client, sub.seq, ops)
    return Planned(sub, StoredOp.of(CommittedOp(rev, sub.client, sub.seq, ops, op_hash)), new_text)


class BatchCommit:
    """One group commit of submissions on one document, with its retries."""

    def __init__(self, doc: DocumentState, store: OpStore, *, max_doc_length: int,
                 snapshot_interval: int, max_retries: int) -> None:
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

        ``pending`` holds no (client, seq) twice (see `split_repeats`): the script compares
        each op only with the seqs committed before the call.
        """
        caught_up = False
        while pending:
            try:
                planned = await self._plan_all(pending, caught_up)
            except _Behind:
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
                    raise HeadBehind(f"{self.doc.name}: the log is at revision {result.head.rev} but "
                                     f"revision {self.doc.rev} was committed: the op log lost data")
                await self._catch_up()
                # catching up may have answered some of them: their ops were committed already
                pending = self._unanswered([p.submission for p in planned])
                continue
            dup = planned[result.index].submission
            assert result.original is not None
            self.duplicates.append((dup, answer_duplicate(dup, result.original)))
            pending = [p.submission for p in planned if p.submission is not dup]
        return []

    async def _catch_up(self) -> None:
        self.retries += 1
        if self.retries > self.max_retries:
            raise RetriesExhausted(f"{self.doc.name}: the head moved {self.retries} times during one commit")
        await self.doc.catch_up()

    def _unanswered(self, subs: list[Submission]) -> list[Submission]:
        settled = {id(sub) for sub, _ in self.refused + self.duplicates}
        return [sub for sub in subs if not sub.result.done() and id(sub) not in settled]

    async def _plan_all(self, pending: list[Submission], caught_up: bool) -> list[Planned]:
        """Plan every submission still unanswered; raises `_Behind` when the log is ahead of us."""
        planned: list[Planned] = []
        for sub in self._unanswered(pending):
            if sub.base > self.doc.rev:
                if not caught_up:  # the client saw a revision this process has not heard of yet
                    raise _Behind
                self._refuse(sub, ErrorCode.REV_AHEAD,
                             f"base {sub.base} is ahead of the document's revision {self.doc.rev}")
                continue
            try:
                committed = await self.doc.ops_after(sub.base)
            except HistoryGone as e:
                if not await self._answer_committed(sub):
                    self._refuse(sub, ErrorCode.BAD_OP, f"cannot rebase from base {sub.base}: {e}")
                continue
            committed += [p.stored.op.ops for p in planned]
            try:
                planned.append(plan(self.doc, sub, committed, planned[-1] if planned else None,
                                    self.max_doc_length))
            except Refusal as r:
                # A resubmit of a committed op counts that op twice (it may pass the length
                # limit, say): its answer is its original ack, whatever it would do now.
                if not await self._answer_committed(sub):
                    self._refuse(sub, r.code, r.message)
        return planned

    async def _answer_committed(self, sub: Submission) -> bool:
        """Answer ``sub`` from its client's record when its seq is committed already.

        Costs a Redis read, so only on paths that would otherwise refuse it. A record past
        this process's head raises `_Behind`: the ops before it go to the client first.
        """
        record = await self.store.client_record(self.doc.name, sub.client)
        if record is None or record.seq < sub.seq:
            return False
        if record.rev > self.doc.rev:
            raise _Behind
        self.duplicates.append((sub, answer_duplicate(sub, record)))
        return True

    def _refuse(self, sub: Submission, code: ErrorCode, message: str) -> None:
        self.refused.append((sub, Error(code=code, message=message, seq=sub.seq)))

    def _snapshot(self, planned: list[Planned]) -> Snapshot | None:
        for p in reversed(planned):
            if p.stored.op.rev % self.snapshot_interval == 0:
                return Snapshot(rev=p.stored.op.rev, text=p.text, hash=p.stored.op.hash)
        return None


def split_repeats(batch: list[Submission]) -> tuple[list[Submission], list[Submission]]:
    """Split off submissions whose client already has one at the same or a higher seq earlier."""
    now: list[Submission] = []
    later: list[Submission] = []
    last: dict[str, int] = {}
    for sub in batch:
        if sub.client in last and sub.seq <= last[sub.client]:
            later.append(sub)
        else:
            last[sub.client] = sub.seq
            now.append(sub)
    return now, later


def answer_duplicate(sub: Submission, original: ClientRecord) -> Ack | Error:
    if original.seq == sub.seq:
        return Ack(seq=sub.seq, rev=original.rev, hash=original.hash)
    return Error(
        code=ErrorCode.BAD_MESSAGE,
        message=f"seq {sub.seq} of client {sub.client!r} is below its last committed seq {original.seq}",
        seq=sub.seq,
    )
