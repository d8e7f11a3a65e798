"""Exactly once at the edges: a resubmit that would now be refused, and a log whose ops do not fit."""

from __future__ import annotations

import json

from tandem.ot.integrity import genesis_hash, next_hash
from tandem.ot.operation import Delete, Insert, Operation
from tandem.ot.protocol import CommittedOp
from tandem.server.store.base import StoredOp
from tandem.server.store.redis import RedisOpStore
from tests.support import RedisProcess, ServerProcess, document, http_get, http_post, run


def test_a_committed_op_resubmitted_at_the_length_limit_gets_its_ack(tandem: ServerProcess, doc: str) -> None:
    # The session server allows 5000 code points: the op fits once, and counted twice it would not.
    url = f"{tandem.http_url}/docs/{doc}/ops"
    ops = [{"type": "Insert", "content": "x" * 3000}]
    body = json.dumps({"client": "c1", "seq": 1, "base": 0, "ops": ops})
    first = http_post(url, body.encode())
    assert first[0] == 200, first
    again = http_post(url, body.encode())  # the client never saw the first answer
    assert again == first, f"a resubmit of a committed op must get its original ack, got {again}"
    assert document(tandem.http_url, doc)["rev"] == 1


def _chain(doc: str, ops: list[Operation]) -> list[StoredOp]:
    records, prev = [], genesis_hash(doc)
    for rev, op in enumerate(ops, 1):
        prev = next_hash(prev, rev, "w", rev, op)
        records.append(StoredOp.of(CommittedOp(rev, "w", rev, op, prev)))
    return records


def test_verify_reports_an_op_that_does_not_fit_the_text(
    redis: RedisProcess, tandem: ServerProcess, doc: str
) -> None:
    # A log with an intact hash chain whose second op deletes past the end of "ab".
    records = _chain(doc, [(Insert("ab"),), (Delete(5),)])

    async def write() -> None:
        store = RedisOpStore(redis.url)
        try:
            for i, record in enumerate(records):
                assert (await store.commit(doc, i, [record])).status == "ok"
        finally:
            await store.close()

    run(write())
    status, body = http_get(f"{tandem.http_url}/docs/{doc}/verify")
    answer = json.loads(body)
    assert status == 200 and answer["ok"] is False and answer["first_bad"] == 2, answer
    assert "does not fit" in answer["message"], answer
