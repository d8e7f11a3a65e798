"""The broadcast log of a document (server/broadcast.py) and the sessions that read it.

Sessions here write to a socket double, so what each receiver is sent can be read frame by
frame: order of acks and ops, the bounds that close a slow receiver, and joins mid-stream
against a real Redis.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from tandem.ot.operation import Insert
from tandem.ot.protocol import Ack, Error, ErrorCode
from tandem.server.broadcast import Broadcast
from tandem.server.document import Document, Join
from tandem.server.metrics import Metrics
from tandem.server.session import WS_1013_TRY_AGAIN_LATER, Session
from tandem.server.settings import Settings
from tandem.server.store.base import text_of
from tandem.server.store.redis import RedisOpStore
from tandem.server.submit import Submission
from tests.support import RedisProcess, run, unique_doc


class Socket:
    """The WebSocket a session writes to: every frame sent, and a switch that stalls sending."""

    def __init__(self, doc: str = "d") -> None:
        self.path_params = {"doc": doc}
        self.frames: list[str] = []
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        await self.flowing.wait()
        self.frames.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for frame in self.frames:
            decoded = json.loads(frame)
            out += decoded if isinstance(decoded, list) else [decoded]
        return out


def session(settings: Settings | None = None, metrics: Metrics | None = None) -> tuple[Session, Socket]:
    socket = Socket()
    hub: Any = None  # a session reaches its hub only on hello and leave
    return Session(cast(Any, socket), hub, settings or Settings(), metrics or Metrics()), socket


def op_frame(rev: int, client: str = "other", size: int = 0) -> str:
    return json.dumps({"type": "op", "rev": rev, "client": client, "seq": rev, "ops": [], "pad": "x" * size})


def ack(rev: int) -> str:
    return text_of(Ack(seq=rev, rev=rev, hash=f"h{rev}"))


def append(log: Broadcast, rev: int, size: int = 0) -> None:
    assert log.head == rev - 1
    frame = op_frame(rev, size=size)
    log.append(frame, len(frame))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.03)  # past the hold (BROADCAST_HOLD_SECONDS)


def kinds(socket: Socket) -> list[tuple[str, int]]:
    return [(m["type"], m["rev"]) for m in socket.messages()]


# -- the log --------------------------------------------------------------------------------


def test_the_log_serves_frames_and_bytes_after_a_revision_and_drops_what_every_follower_read() -> None:
    async def scenario() -> None:
        log = Broadcast(10, max_ops=100, max_bytes=1 << 20)
        assert log.frames(10, 10) == [] and log.bytes_after(10) == 0
        for rev in range(11, 16):
            append(log, rev)
        assert log.first == 11 and len(log) == 5
        assert log.frames(12, 14) == [op_frame(13), op_frame(14)]
        assert log.bytes_after(12, 14) == len(op_frame(13)) + len(op_frame(14))
        assert log.bytes_after(10) == sum(len(op_frame(r)) for r in range(11, 16))
        log.check()  # nobody follows: nothing is owed to anyone
        assert len(log) == 0 and log.first == 16
        assert log.frames(12, 14) is None and log.bytes_after(12) is None, "dropped: gone, not wrong"
        append(log, 16)
        assert log.frames(15, 16) == [op_frame(16)]

    run(scenario())


def test_the_log_keeps_what_a_follower_has_not_read() -> None:
    async def scenario() -> None:
        log = Broadcast(0, max_ops=1000, max_bytes=1 << 20)
        reader, socket = session()
        socket.flowing.clear()  # its first frame never leaves: it reads nothing more
        writer = asyncio.create_task(reader._write())
        reader.follow(log)
        append(log, 1)
        await asyncio.sleep(0.01)  # the writer takes op 1 and waits in its send
        for rev in range(2, 201):
            append(log, rev)
        assert log.first == 2, "ops 2.. are owed to the stalled reader"
        socket.flowing.set()
        await settle()
        log.check()
        assert len(log) == 0, "all read: nothing held"
        assert kinds(socket) == [("op", r) for r in range(1, 201)]
        writer.cancel()

    run(scenario())


# -- one session ---------------------------------------------------------------------------


def test_an_ack_takes_its_ops_place_after_the_ops_before_it_and_before_those_after() -> None:
    async def scenario() -> Socket:
        log = Broadcast(0, max_ops=1000, max_bytes=1 << 20)
        author, socket = session()
        writer = asyncio.create_task(author._write())
        author.follow(log)
        append(log, 1)
        append(log, 2)
        # as Document.advance does: the ack first, then the op into the log
        author.deliver(ack(3), 3)
        append(log, 3)
        append(log, 4)
        await settle()
        author.deliver(text_of(Error(code=ErrorCode.BAD_MESSAGE, message="x")))  # no rev: after op 4
        append(log, 5)
        await settle()
        assert author.sent_rev == 5
        writer.cancel()
        return socket

    socket = run(scenario())
    assert [(m["type"], m.get("rev")) for m in socket.messages()] == [
        ("op", 1),
        ("op", 2),
        ("ack", 3),
        ("op", 4),
        ("error", None),
        ("op", 5),
    ]


def test_others_ops_wait_for_the_hold_and_go_at_once_with_an_ack() -> None:
    async def scenario() -> Socket:
        log = Broadcast(0, max_ops=1000, max_bytes=1 << 20)
        author, socket = session()
        writer = asyncio.create_task(author._write())
        author.follow(log)
        append(log, 1)  # after a quiet spell: at once
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(socket.frames) == 1
        append(log, 2)
        append(log, 3)
        await asyncio.sleep(0)
        assert len(socket.frames) == 1, "held: the last frame left less than the hold ago"
        author.deliver(ack(4), 4)
        append(log, 4)
        await asyncio.sleep(0.005)
        writer.cancel()
        return socket

    socket = run(scenario())
    assert [json.loads(f) if f.startswith("[") else [json.loads(f)] for f in socket.frames][1] == [
        json.loads(op_frame(2)),
        json.loads(op_frame(3)),
        json.loads(ack(4)),
    ], "the held ops go with the ack, in one frame"


def test_a_receiver_past_the_bytes_bound_is_closed_1013_and_the_log_stays_bounded() -> None:
    settings = Settings(send_queue_bytes=20_000, answer_max_bytes=1000, max_doc_length=1000)
    metrics = Metrics()

    async def scenario() -> tuple[Session, Socket, Socket, Broadcast]:
        log = Broadcast(0, settings.send_queue_limit, settings.send_queue_bytes)
        slow, slow_socket = session(settings, metrics)
        fast, fast_socket = session(settings, metrics)
        slow_socket.flowing.clear()
        tasks = [asyncio.create_task(s._write()) for s in (slow, fast)]
        slow.follow(log)
        fast.follow(log)
        for rev in range(1, 101):  # 100 ops of ~1 KB: 100 KB, five times the bound
            append(log, rev, size=1000)
            assert log.bytes <= settings.send_queue_bytes + 1100
            if rev % 5 == 0:
                await asyncio.sleep(0.04)  # past the hold: the fast one keeps up
        await settle()
        assert slow.close_code == WS_1013_TRY_AGAIN_LATER
        slow_socket.flowing.set()  # it reads again: what it was owed until closed, then the close
        await settle()
        for task in tasks:
            task.cancel()
        return slow, slow_socket, fast_socket, log

    slow, slow_socket, fast_socket, log = run(scenario())
    assert slow.close_reason == "too far behind; reconnect and resume"
    assert slow_socket.closed == (WS_1013_TRY_AGAIN_LATER, "too far behind; reconnect and resume")
    assert metrics.get("tandem_slow_receivers_total") == 1
    assert slow not in log.followers
    assert kinds(fast_socket) == [("op", r) for r in range(1, 101)], "the others are not held up"
    sent = [m["rev"] for m in slow_socket.messages()]
    assert sent == list(range(1, len(sent) + 1)), "what it got before the close is in order"


def test_a_receiver_past_the_count_bound_is_closed_1013() -> None:
    settings = Settings(send_queue_limit=50)
    metrics = Metrics()

    async def scenario() -> Session:
        log = Broadcast(0, settings.send_queue_limit, settings.send_queue_bytes)
        slow, slow_socket = session(settings, metrics)
        slow_socket.flowing.clear()
        task = asyncio.create_task(slow._write())
        slow.follow(log)
        for rev in range(1, 100):
            append(log, rev)
            await asyncio.sleep(0)
        assert len(log) <= settings.send_queue_limit + 1
        task.cancel()
        return slow

    slow = run(scenario())
    assert slow.close_code == WS_1013_TRY_AGAIN_LATER
    assert metrics.get("tandem_slow_receivers_total") == 1


# -- a document ------------------------------------------------------------------------------


def test_a_receiver_joining_mid_stream_gets_every_later_op_once_in_order(redis: RedisProcess) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        store = RedisOpStore(redis.url, timeout=30)
        doc = Document(unique_doc("mid"), store, Settings(), Metrics(), lambda name, frame: None)
        await doc.load()
        doc.start()
        fresh, fresh_socket = session()
        resumed, resumed_socket = session()
        writers = [asyncio.create_task(s._write()) for s in (fresh, resumed)]
        submissions: list[Submission] = []
        try:
            for seq in range(1, 121):
                submission = Submission("typist", seq, 0, (Insert("x"),))  # rebased through those before it
                submissions.append(submission)
                doc.put(submission)
                if seq == 40:
                    done: asyncio.Future[Error | None] = asyncio.get_running_loop().create_future()
                    doc.put(Join(fresh, None, done))  # a snapshot, then every op after it
                if seq == 70:
                    again: asyncio.Future[Error | None] = asyncio.get_running_loop().create_future()
                    doc.put(Join(resumed, 5, again))  # a replay from revision 5, then the rest
                await asyncio.sleep(0.002 if seq % 3 else 0)
            answers = await asyncio.gather(*(s.result for s in submissions))
            assert all(isinstance(a, Ack) for a in answers)
            await settle()
            return fresh_socket.messages(), resumed_socket.messages(), doc.rev
        finally:
            for task in writers:
                task.cancel()
            await doc.stop()
            await store.close()

    fresh, resumed, head = run(scenario())
    assert head == 120
    assert fresh[0]["type"] == "snapshot" and fresh[1] == {"type": "ready", "rev": fresh[0]["rev"]}
    start = fresh[0]["rev"]
    assert [m["rev"] for m in fresh[2:]] == list(range(start + 1, head + 1))
    assert all(m["type"] == "op" for m in fresh[2:])
    ready = next(i for i, m in enumerate(resumed) if m["type"] == "ready")
    assert [m["rev"] for m in resumed[:ready]] == list(range(6, resumed[ready]["rev"] + 1))
    assert [m["rev"] for m in resumed[ready + 1 :]] == list(range(resumed[ready]["rev"] + 1, head + 1))
