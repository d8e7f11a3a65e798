"""Recorded runs of the Python client state machine, for tests/vectors/client.json.

The reference server of refserver.py and a lossy connection drive one
`ClientSession` through random edits, remote commits, presence, lost, duplicated and
corrupted messages, reconnects with and without the log, and refused ops. Every input and
the effects it returned are recorded, so the JavaScript twin (web/client.js) can replay
the inputs and must return the same effects.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import msgspec

from tandem.ot.client import ClientSession, Synchronized
from tandem.ot.cursor import Cursor
from tandem.ot.effects import Effect, Reconnect, Send
from tandem.ot.operation import Operation
from tandem.ot.protocol import CommittedOp, Error, ErrorCode, Fetch, Presence, ServerMessage, SubmitOp, User
from tandem.testing.refserver import Link, RefServer

Step = dict[str, Any]
OTHER_USER = User(name="Grace", color="#c2185b")


def _effect(e: Effect) -> dict[str, Any]:
    fields = {f.name: msgspec.to_builtins(getattr(e, f.name)) for f in dataclasses.fields(e)}
    return {"type": type(e).__name__, **fields}


class Scenario:
    """One session under test ("me") on a lossy link; "other" edits through the server."""

    def __init__(self, rng: random.Random, make_op: Callable[[random.Random, int], Operation]) -> None:
        self.rng = rng
        self.make_op = make_op
        self.server = RefServer()
        self.session = ClientSession("me", user=User(name="Ada", color="#1e88e5"))
        self.link: Link | None = None
        self.other = self.server.connect("other")
        self.other.greeted = True
        self.other_seq = 0
        self.steps: list[Step] = []

    # --------------------------------------------------------- recording

    def _record(self, step: Step, effects: list[Effect]) -> None:
        step["effects"] = [_effect(e) for e in effects]
        self.steps.append(step)
        for e in effects:
            if isinstance(e, Send) and self.link is not None:
                self.link.up.append(e.message)
        if any(isinstance(e, Reconnect) for e in effects):
            self.drop()
            self.connect()

    def connect(self) -> None:
        self.link = self.server.connect("me")
        self._record({"do": "connect"}, self.session.connect())

    def drop(self) -> None:
        if self.link is not None:
            self.server.close(self.link)
            self.link = None
        self._record({"do": "disconnected"}, self.session.disconnected())

    def deliver(self, msg: ServerMessage) -> None:
        self._record({"do": "receive", "message": msgspec.to_builtins(msg)}, self.session.receive(msg))

    # --------------------------------------------------------- the world

    def local_edit(self) -> None:
        if self.session.rev is None:
            return
        op = self.make_op(self.rng, len(self.session.text))
        self._record({"do": "edit", "op": msgspec.to_builtins(op)}, self.session.edit(op))

    def local_cursor(self) -> None:
        n = len(self.session.text)
        cursor = Cursor(self.rng.randint(0, n), self.rng.randint(0, n))
        self._record({"do": "cursor", "cursor": msgspec.to_builtins(cursor)}, self.session.set_cursor(cursor))

    def other_commit(self) -> None:
        base = self.rng.randint(max(0, self.server.head - 2), self.server.head)
        ops = self.make_op(self.rng, len(self.server.texts[base]))
        if ops:
            self.other_seq += 1
            self.server.handle(self.other, SubmitOp(seq=self.other_seq, base=base, ops=ops))
            self.other.down.clear()

    def other_presence(self) -> None:
        n = len(self.server.texts[-1])
        cursor = None if self.rng.random() < 0.15 else Cursor(self.rng.randint(0, n), self.rng.randint(0, n))
        self.server.handle(self.other, Presence(cursor=cursor, user=OTHER_USER))

    def serve_one(self) -> None:
        """The server handles the oldest message from the session, sometimes refusing an op."""
        if self.link is None or not self.link.up:
            return
        msg = self.link.up.popleft()
        roll = self.rng.random()
        if isinstance(msg, SubmitOp) and ("me", msg.seq) not in self.server.committed and roll < 0.12:
            code = ErrorCode.RATE_LIMITED if roll < 0.07 else ErrorCode.BAD_OP
            self.link.down.append(Error(code=code, message="refused", seq=msg.seq))
            return
        if roll > 0.8:
            self.server.compact()  # the next resume finds the log gone and gets a snapshot
        before = len(self.link.down)
        self.server.handle(self.link, msg)
        if isinstance(msg, Fetch) and roll < 0.5 and len(self.link.down) - before >= 2:
            del self.link.down[before]  # an answer with a hole: the session must ask again

    def deliver_one(self) -> None:
        if self.link is None or not self.link.down:
            return
        roll = self.rng.random()
        msg = self.link.down.popleft()
        if roll < 0.08 and isinstance(msg, CommittedOp):
            # lost, sometimes with the next one: the session finds the gap and fetches
            if roll < 0.04 and self.link.down and isinstance(self.link.down[0], CommittedOp):
                self.link.down.popleft()
            return
        if roll < 0.11 and isinstance(msg, CommittedOp):
            msg = CommittedOp(rev=msg.rev, client=msg.client, seq=msg.seq, ops=msg.ops, hash="0" * 64)
        elif roll < 0.15 and self.session.rev:
            self.deliver(self.server._committed(self.rng.randint(1, self.session.rev)))  # a duplicate
        self.deliver(msg)

    # --------------------------------------------------------- a run

    def run(self, count: int) -> dict[str, Any]:
        self.connect()
        actions: list[tuple[float, Callable[[], None]]] = [
            (0.14, self.local_edit),
            (0.03, self.local_cursor),
            (0.17, self.other_commit),
            (0.03, self.other_presence),
            (0.24, self.serve_one),
            (0.34, self.deliver_one),
            (0.03, self._flaky_connection),
            (0.02, self._resubmit),
        ]
        for _ in range(count):
            roll = self.rng.random()
            for weight, action in actions:
                if roll < weight:
                    action()
                    break
                roll -= weight
        self._settle()
        if self.session.text != self.server.texts[-1]:
            raise AssertionError(f"no convergence: {self.session.text!r} != {self.server.texts[-1]!r}")
        return {"steps": self.steps, "text": self.session.text, "rev": self.session.rev}

    def _flaky_connection(self) -> None:
        if self.link is not None:
            self.drop()
        else:
            self.connect()

    def _resubmit(self) -> None:
        if self.link is not None:
            self._record({"do": "resubmit"}, self.session.resubmit())

    def _settle(self) -> None:
        """Deliver everything without loss until the session is synchronized and caught up."""
        for _ in range(500):
            if self.link is None:
                self.connect()
            assert self.link is not None
            if self.link.up:
                self.server.handle(self.link, self.link.up.popleft())
            elif self.link.down:
                self.deliver(self.link.down.popleft())
            elif isinstance(self.session.state, Synchronized) and self.session.rev == self.server.head:
                return
            else:
                self._record({"do": "resubmit"}, self.session.resubmit())
                if not self.link.up:
                    self.drop()
        raise AssertionError("scenario did not settle in 500 steps")
