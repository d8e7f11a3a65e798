"""Every committed op carries its commit time (`time`, ms since the epoch), over the WebSocket
and HTTP alike, outside the integrity chain: the hashes are those of the record without it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgspec

from tandem.ot.integrity import canonical_record, genesis_hash, next_hash
from tandem.ot.operation import Insert, Retain
from tandem.ot.protocol import CommittedOp, decode_server_frame
from tandem.server.hooks import ChangeEvent, Hook, run_hooks
from tandem.server.settings import Settings
from tandem.server.store.base import StoredOp
from tandem.server.store.redis import RedisOpStore
from tests.support import Raw, ServerProcess, assert_verified, http_get, http_post, redis_process, run


def test_committed_ops_carry_their_commit_time_and_the_same_hashes(tandem: ServerProcess, doc: str) -> None:
    started = time.time_ns() // 1_000_000
    with Raw(tandem.ws_url, doc) as a, Raw(tandem.ws_url, doc) as b:
        a.hello("a")
        b.hello("b")
        a.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "hi"}]})
        ack = a.until("ack")
        assert "time" not in ack  # an ack names a revision the sender already holds
        live = b.until("op")
        status, body = http_post(
            f"{tandem.http_url}/docs/{doc}/ops",
            json.dumps(
                {
                    "client": "h",
                    "seq": 1,
                    "base": 1,
                    "ops": [{"type": "Retain", "length": 2}, {"type": "Insert", "content": "!"}],
                }
            ).encode(),
        )
        assert status == 200, body
        second = b.until("op")
    finished = time.time_ns() // 1_000_000

    h1 = next_hash(genesis_hash(doc), 1, "a", 1, (Insert("hi"),))
    h2 = next_hash(h1, 2, "h", 1, (Retain(2), Insert("!")))
    assert (live["hash"], second["hash"], ack["hash"]) == (h1, h2, h1)
    for op in (live, second):
        assert isinstance(op["time"], int) and started <= op["time"] <= finished
    assert live["time"] <= second["time"]

    status, body = http_get(f"{tandem.http_url}/docs/{doc}/ops?from=1&to=2")
    assert status == 200
    assert json.loads(body)["ops"] == [live, second]  # the log holds the frame as broadcast
    status, body = http_get(f"{tandem.http_url}/docs/{doc}/ops?from=2&to=2")
    assert json.loads(body)["ops"] == [second]
    assert_verified(tandem.http_url, doc)


def test_the_time_is_outside_the_hashed_record_and_optional_on_the_wire() -> None:
    ops = (Insert("hi"),)
    h = next_hash(genesis_hash("notes"), 1, "alice", 1, ops)
    stamped = CommittedOp(1, "alice", 1, ops, h, 1_700_000_000_123)
    bare = CommittedOp(1, "alice", 1, ops, h)
    assert (
        canonical_record(1, "alice", 1, ops)
        == b'{"rev":1,"client":"alice","seq":1,"ops":[{"type":"Insert","content":"hi"}]}'
    )
    assert b'"time":1700000000123' in msgspec.json.encode(stamped)
    assert b"time" not in msgspec.json.encode(bare)  # frames of older servers, and still decoded
    assert decode_server_frame(msgspec.json.encode(bare)) == [bare]
    assert decode_server_frame(msgspec.json.encode([stamped, bare])) == [stamped, bare]
    old_frame = (
        b'{"type":"op","rev":1,"client":"alice","seq":1,"ops":[{"type":"Insert","content":"hi"}],"hash":"'
        + h.encode()
        + b'"}'
    )
    assert StoredOp.from_frame(old_frame).op == bare


def test_a_hook_gets_the_commit_time_of_each_op(tmp_path: Path) -> None:
    redis = redis_process(tmp_path / "redis")  # a runner reads every document of its Redis

    async def scenario() -> None:
        store = RedisOpStore(redis.url)
        h1 = next_hash(genesis_hash("t"), 1, "c", 1, (Insert("x"),))
        h2 = next_hash(h1, 2, "c", 2, (Insert("y"),))
        records = [  # a stamped op, then one as older servers stored it
            StoredOp.of(CommittedOp(1, "c", 1, (Insert("x"),), h1, 1_700_000_000_123)),
            StoredOp.of(CommittedOp(2, "c", 2, (Insert("y"),), h2)),
        ]
        assert (await store.commit("t", 0, records)).status == "ok"
        got: list[ChangeEvent] = []

        async def deliver(events: list[ChangeEvent]) -> None:
            got.extend(events)

        async with run_hooks(store, Settings(hook_scan_seconds=1.0), [Hook("times", deliver)]):
            async with asyncio.timeout(20):
                while len(got) < 2:
                    await asyncio.sleep(0.05)
        assert [(e.rev, e.time) for e in got] == [(1, 1_700_000_000_123), (2, None)]
        await store.close()

    try:
        run(scenario(), 30)
    finally:
        redis.stop()
